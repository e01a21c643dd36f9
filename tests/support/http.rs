//! A tiny real HTTP/1.1 file server for the tests that download: files held in memory are served at
//! `/{name}`, a single `Range: bytes=N-` or `bytes=N-M` header is honoured, and a file can be set to break off
//! midway to act out a cut download. Every request is logged with its Range header. Each connection gets its
//! own thread and one answer (`Connection: close`); the server stops when dropped.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::ops::Range;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::Duration;

/// How a served file is delivered.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Delivery {
    /// The whole file (or the requested range), honest Content-Length.
    Whole,
    /// Announce the full Content-Length but close the connection after `n` bytes of the body (a cut download).
    CutAfter(u64),
}

/// What the server shares with its connection threads: the files with their delivery, and the Range header
/// (if any) of every request seen, by name.
#[derive(Default)]
struct State {
    files: HashMap<String, (Arc<Vec<u8>>, Delivery)>,
    requests: HashMap<String, Vec<Option<String>>>,
}

/// An HTTP server on loopback serving in-memory files. Stops accepting when dropped.
pub struct FileServer {
    addr: SocketAddr,
    state: Arc<Mutex<State>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl FileServer {
    /// Serve on 127.0.0.1 on a free port.
    pub fn start() -> FileServer {
        let listener = TcpListener::bind(("127.0.0.1", 0)).expect("bind a loopback port");
        let addr = listener.local_addr().expect("the bound address");
        let state = Arc::new(Mutex::new(State::default()));
        let stop = Arc::new(AtomicBool::new(false));
        let (shared, stopping) = (state.clone(), stop.clone());
        let thread = Some(std::thread::spawn(move || {
            for conn in listener.incoming() {
                if stopping.load(Ordering::SeqCst) {
                    break;
                }
                if let Ok(stream) = conn {
                    let shared = shared.clone();
                    std::thread::spawn(move || answer(stream, &shared));
                }
            }
        }));
        FileServer {
            addr,
            state,
            stop,
            thread,
        }
    }

    /// `http://127.0.0.1:{port}/{name}`
    pub fn url(&self, name: &str) -> String {
        format!("http://{}/{name}", self.addr)
    }

    /// Serve `bytes` at `/{name}` with `delivery` (replaces an earlier one of that name).
    pub fn put(&self, name: &str, bytes: Vec<u8>, delivery: Delivery) {
        let file = (Arc::new(bytes), delivery);
        lock(&self.state).files.insert(name.to_string(), file);
    }

    /// Change how `/{name}` is delivered. Panics if nothing was put under that name.
    pub fn set_delivery(&self, name: &str, delivery: Delivery) {
        let found = lock(&self.state)
            .files
            .get_mut(name)
            .map(|file| file.1 = delivery);
        assert!(found.is_some(), "no file {name:?} is served");
    }

    /// Requests seen so far for `/{name}`: each entry is the value of the Range header if any (None = no Range).
    pub fn requests(&self, name: &str) -> Vec<Option<String>> {
        let state = lock(&self.state);
        state.requests.get(name).cloned().unwrap_or_default()
    }
}

impl Drop for FileServer {
    /// Raise the stop flag, wake the accept loop with a connection of our own, and wait for it to end.
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(self.addr);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// The shared state, even if a panicking test thread poisoned its lock.
fn lock(state: &Mutex<State>) -> MutexGuard<'_, State> {
    state.lock().unwrap_or_else(|e| e.into_inner())
}

/// Read one request and answer it, then close the connection. Any I/O error just drops the connection.
fn answer(mut stream: TcpStream, state: &Mutex<State>) {
    let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
    let Some(head) = read_head(&mut stream) else {
        return;
    };
    let mut lines = head.split("\r\n");
    let mut words = lines.next().unwrap_or_default().split_whitespace();
    let method = words.next().unwrap_or_default();
    let name = words.next().unwrap_or_default().trim_start_matches('/');
    let range = lines
        .filter_map(|line| line.split_once(':'))
        .find(|(key, _)| key.trim().eq_ignore_ascii_case("range"))
        .map(|(_, value)| value.trim().to_string());
    let file = {
        let mut st = lock(state);
        let log = st.requests.entry(name.to_string()).or_default();
        log.push(range.clone());
        st.files.get(name).cloned()
    };
    let (status, extra, span) = match method {
        "GET" | "HEAD" => reply(file.as_ref().map(|f| &f.0[..]), range.as_deref()),
        _ => ("405 Method Not Allowed", String::new(), 0..0),
    };
    let body = file.as_ref().map_or(&[][..], |f| &f.0[span]);
    let head = format!(
        "HTTP/1.1 {status}\r\nContent-Length: {}\r\nContent-Type: application/octet-stream\r\n\
         Accept-Ranges: bytes\r\nConnection: close\r\n{extra}\r\n",
        body.len()
    );
    if stream.write_all(head.as_bytes()).is_err() || method == "HEAD" {
        return;
    }
    match file.as_ref().map(|f| f.1) {
        Some(Delivery::CutAfter(n)) => {
            let cut = body.len().min(n.try_into().unwrap_or(usize::MAX));
            let _ = stream.write_all(&body[..cut]).and_then(|()| stream.flush());
            let _ = stream.shutdown(Shutdown::Both);
        }
        _ => {
            let _ = stream.write_all(body).and_then(|()| stream.flush());
        }
    }
}

/// Status, extra header line and body span of the answer to a GET of `file` (`None`: nothing served there)
/// with `range`. Only a single `bytes=N-` or `bytes=N-M` is honoured; any other range (malformed, several,
/// suffix `-N`) is ignored and the whole file is served.
fn reply(file: Option<&[u8]>, range: Option<&str>) -> (&'static str, String, Range<usize>) {
    let Some(total) = file.map(<[u8]>::len) else {
        return ("404 Not Found", String::new(), 0..0);
    };
    let asked = range
        .and_then(|r| r.strip_prefix("bytes=")?.split_once('-'))
        .and_then(|(first, last)| {
            let start: usize = first.trim().parse().ok()?;
            let end = match last.trim() {
                "" => usize::MAX,
                last => last.parse().ok().filter(|&end| end >= start)?,
            };
            Some((start, end))
        });
    match asked {
        None => ("200 OK", String::new(), 0..total),
        Some((start, _)) if start >= total => {
            let header = format!("Content-Range: bytes */{total}\r\n");
            ("416 Range Not Satisfiable", header, 0..0)
        }
        Some((start, end)) => {
            let end = end.min(total - 1);
            let header = format!("Content-Range: bytes {start}-{end}/{total}\r\n");
            ("206 Partial Content", header, start..end + 1)
        }
    }
}

/// The request line and headers, read up to the blank line that ends them; `None` if the peer closes, errs or
/// sends more than 16 KiB of them.
fn read_head(stream: &mut TcpStream) -> Option<String> {
    let (mut buf, mut chunk) = (Vec::new(), [0u8; 1024]);
    while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
        if buf.len() > 16 * 1024 {
            return None;
        }
        let n = stream.read(&mut chunk).ok().filter(|&n| n > 0)?;
        buf.extend_from_slice(&chunk[..n]);
    }
    String::from_utf8(buf).ok()
}
