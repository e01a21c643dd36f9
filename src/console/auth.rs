//! Who may use the console: one installer password (an Argon2id hash in the configuration, never the
//! password), a random session token in an `HttpOnly; SameSite=Strict` cookie that ends after idle minutes,
//! a per-session token every state-changing request repeats in a header, the request's own origin checked,
//! and wrong passwords throttled per client address.

use axum::http::{HeaderMap, Method, header};
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// The session cookie's name.
pub const COOKIE: &str = "ss_console";
/// The header a state-changing request carries the session's CSRF token in.
pub const CSRF_HEADER: &str = "x-csrf-token";
/// Wrong passwords in a row from one address before it must wait.
pub const FREE_ATTEMPTS: u32 = 5;
/// The first wait; each further wrong password doubles it up to [`MAX_LOCK`].
pub const FIRST_LOCK: Duration = Duration::from_secs(30);
pub const MAX_LOCK: Duration = Duration::from_secs(15 * 60);
/// Sessions at once (an installer or two); past it the idlest ends.
const MAX_SESSIONS: usize = 16;
/// Addresses remembered for throttling; past it the oldest unlocked ones are forgotten.
const MAX_CLIENTS: usize = 1024;

struct Session {
    csrf: String,
    last: Instant,
}

#[derive(Default)]
struct Failures {
    count: u32,
    locked_until: Option<Instant>,
    last: Option<Instant>,
}

/// Sessions and failed logins, in memory (a restart logs everyone out, which is fine on a pole).
pub struct Auth {
    password_hash: String,
    idle: Duration,
    /// The console's port: a request's `Host` must name it (see [`Auth::host_allowed`]).
    port: u16,
    sessions: Mutex<HashMap<String, Session>>,
    failures: Mutex<HashMap<IpAddr, Failures>>,
}

/// Why a request was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// No session, or it ended: log in.
    NoSession,
    /// A state-changing request without the session's token, or from another site.
    CrossSite(&'static str),
    /// Too many wrong passwords from this address: wait this long.
    Throttled(Duration),
    /// The password was wrong.
    WrongPassword,
}

/// A new session: the cookie's value and the token pages send back in [`CSRF_HEADER`].
pub struct NewSession {
    pub token: String,
    pub csrf: String,
}

impl Auth {
    pub fn new(password_hash: String, idle: Duration, port: u16) -> Self {
        Auth {
            password_hash,
            idle,
            port,
            sessions: Mutex::default(),
            failures: Mutex::default(),
        }
    }

    /// Whether the request names this console as its host: `localhost` or an IP address, with the console's
    /// port. A web page whose own name was re-pointed at the pole (DNS rebinding) sends its own name and is
    /// refused, so it can neither guess passwords nor use a session.
    pub fn host_allowed(&self, headers: &HeaderMap) -> bool {
        let Some(host) = headers.get(header::HOST).and_then(|v| v.to_str().ok()) else {
            return false;
        };
        let Some((name, port)) = host.rsplit_once(':') else {
            return false;
        };
        let name = name.trim_start_matches('[').trim_end_matches(']');
        port.parse() == Ok(self.port)
            && (name.eq_ignore_ascii_case("localhost") || name.parse::<IpAddr>().is_ok())
    }

    /// How long a session lasts without a request.
    pub fn idle(&self) -> Duration {
        self.idle
    }

    /// Check `password` for a login from `client`; blocking (Argon2 takes tens to hundreds of ms on
    /// purpose): call it off the async threads.
    pub fn login(&self, client: IpAddr, password: &str) -> Result<NewSession, Refusal> {
        let now = Instant::now();
        if let Some(wait) = self.locked(client, now) {
            return Err(Refusal::Throttled(wait));
        }
        if verify(&self.password_hash, password) {
            self.failures.lock().expect("failures lock").remove(&client);
            let session = NewSession {
                token: random_hex(32),
                csrf: random_hex(32),
            };
            let mut sessions = self.sessions.lock().expect("sessions lock");
            sessions.retain(|_, s| now.duration_since(s.last) < self.idle);
            if sessions.len() >= MAX_SESSIONS
                && let Some(idlest) = sessions
                    .iter()
                    .min_by_key(|(_, s)| s.last)
                    .map(|(k, _)| k.clone())
            {
                sessions.remove(&idlest);
            }
            sessions.insert(
                session.token.clone(),
                Session {
                    csrf: session.csrf.clone(),
                    last: now,
                },
            );
            return Ok(session);
        }
        let mut failures = self.failures.lock().expect("failures lock");
        if failures.len() >= MAX_CLIENTS {
            failures.retain(|_, f| f.locked_until.is_some_and(|t| t > now));
            if failures.len() >= MAX_CLIENTS {
                // Every remembered address is locked out: forget the one locked longest ago.
                if let Some(oldest) = failures.iter().min_by_key(|(_, f)| f.last).map(|(k, _)| *k) {
                    failures.remove(&oldest);
                }
            }
        }
        let f = failures.entry(client).or_default();
        f.count += 1;
        f.last = Some(now);
        if f.count >= FREE_ATTEMPTS {
            let doublings = (f.count - FREE_ATTEMPTS).min(16);
            let wait = (FIRST_LOCK * 2u32.pow(doublings)).min(MAX_LOCK);
            f.locked_until = Some(now + wait);
            tracing::warn!(%client, failures = f.count, wait_s = wait.as_secs(), "Console: wrong passwords; this address must wait.");
        }
        Err(Refusal::WrongPassword)
    }

    /// How long `client` must still wait before trying a password.
    fn locked(&self, client: IpAddr, now: Instant) -> Option<Duration> {
        let failures = self.failures.lock().expect("failures lock");
        failures
            .get(&client)
            .and_then(|f| f.locked_until)
            .filter(|t| *t > now)
            .map(|t| t - now)
    }

    /// End the session of `headers`' cookie.
    pub fn logout(&self, headers: &HeaderMap) {
        if let Some(token) = cookie(headers, COOKIE) {
            self.sessions.lock().expect("sessions lock").remove(token);
        }
    }

    /// Whether the request may go on: a live session, and for anything but GET/HEAD the session's CSRF
    /// token and a same-origin request. Touches the session (idle time starts again). Returns the session's
    /// CSRF token.
    pub fn admit(&self, method: &Method, headers: &HeaderMap) -> Result<String, Refusal> {
        if !self.host_allowed(headers) {
            return Err(Refusal::CrossSite("the request names another host"));
        }
        let token = cookie(headers, COOKIE).ok_or(Refusal::NoSession)?;
        let now = Instant::now();
        let mut sessions = self.sessions.lock().expect("sessions lock");
        let Some(session) = sessions.get_mut(token) else {
            return Err(Refusal::NoSession);
        };
        if now.duration_since(session.last) >= self.idle {
            sessions.remove(token);
            return Err(Refusal::NoSession);
        }
        if !is_safe(method) {
            same_origin(headers)?;
            let sent = headers
                .get(CSRF_HEADER)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("");
            if !constant_time_eq(sent.as_bytes(), session.csrf.as_bytes()) {
                return Err(Refusal::CrossSite("the request lacks this session's token"));
            }
        }
        session.last = now;
        Ok(session.csrf.clone())
    }
}

fn is_safe(method: &Method) -> bool {
    method == Method::GET || method == Method::HEAD
}

/// A state-changing request must come from the console's own pages: a browser says where a request comes
/// from in `Sec-Fetch-Site` and `Origin`, and another site cannot make it say otherwise.
pub fn same_origin(headers: &HeaderMap) -> Result<(), Refusal> {
    let get = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    if let Some(site) = get("sec-fetch-site")
        && site != "same-origin"
        && site != "none"
    {
        return Err(Refusal::CrossSite("the request comes from another site"));
    }
    if let Some(origin) = get(header::ORIGIN.as_str()) {
        let host = get(header::HOST.as_str()).unwrap_or("");
        let bare = origin
            .strip_prefix("http://")
            .or_else(|| origin.strip_prefix("https://"))
            .unwrap_or("");
        if bare != host {
            return Err(Refusal::CrossSite(
                "the request's origin is not this console",
            ));
        }
    }
    Ok(())
}

/// The value of cookie `name` in the request's `Cookie` headers.
pub fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

/// The `Set-Cookie` value for a new session.
pub fn session_cookie(token: &str, idle: Duration) -> String {
    format!(
        "{COOKIE}={token}; Path=/; HttpOnly; SameSite=Strict; Max-Age={}",
        idle.as_secs()
    )
}

/// The `Set-Cookie` value that ends a session in the browser.
pub fn cleared_cookie() -> String {
    format!("{COOKIE}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0")
}

/// Whether `password` matches the Argon2id PHC string `phc` (the parameters come from the string).
pub fn verify(phc: &str, password: &str) -> bool {
    use argon2::password_hash::PasswordVerifier;
    let Ok(hash) = argon2::password_hash::phc::PasswordHash::new(phc) else {
        return false;
    };
    argon2::Argon2::default()
        .verify_password(password.as_bytes(), &hash)
        .is_ok()
}

/// An Argon2id PHC string for `password` with a random salt (`streetsight console-password`).
pub fn hash(password: &str) -> anyhow::Result<String> {
    use argon2::password_hash::PasswordHasher;
    argon2::Argon2::default()
        .hash_password(password.as_bytes())
        .map(|h| h.to_string())
        .map_err(|e| anyhow::anyhow!("could not hash the password: {e}"))
}

fn random_hex(bytes: usize) -> String {
    use rand::RngCore;
    let mut buf = vec![0u8; bytes];
    rand::rng().fill_bytes(&mut buf);
    buf.iter().map(|b| format!("{b:02x}")).collect()
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn auth() -> Auth {
        Auth::new(hash("richtig").unwrap(), Duration::from_secs(60), 9320)
    }

    fn with_cookie(token: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(header::HOST, HeaderValue::from_static("127.0.0.1:9320"));
        h.insert(
            header::COOKIE,
            HeaderValue::from_str(&format!("other=1; {COOKIE}={token}")).unwrap(),
        );
        h
    }

    #[test]
    fn a_session_admits_reads_and_writes_only_with_its_token_from_its_own_origin() {
        let a = auth();
        let ip: IpAddr = "127.0.0.1".parse().unwrap();
        let s = a.login(ip, "richtig").unwrap();
        let mut h = with_cookie(&s.token);
        assert_eq!(a.admit(&Method::GET, &h), Ok(s.csrf.clone()));
        assert!(matches!(
            a.admit(&Method::POST, &h),
            Err(Refusal::CrossSite(_))
        ));
        h.insert(CSRF_HEADER, HeaderValue::from_str(&s.csrf).unwrap());
        h.insert(
            header::ORIGIN,
            HeaderValue::from_static("http://127.0.0.1:9320"),
        );
        assert!(a.admit(&Method::POST, &h).is_ok());
        h.insert(
            header::ORIGIN,
            HeaderValue::from_static("http://evil.example"),
        );
        assert!(a.admit(&Method::POST, &h).is_err());
        assert_eq!(
            a.admit(&Method::GET, &with_cookie("forged")),
            Err(Refusal::NoSession)
        );
        a.logout(&with_cookie(&s.token));
        assert_eq!(
            a.admit(&Method::GET, &with_cookie(&s.token)),
            Err(Refusal::NoSession)
        );
    }

    #[test]
    fn only_requests_naming_the_console_by_address_or_localhost_and_its_port_are_admitted() {
        let a = auth();
        let host = |h: &'static str| {
            let mut m = HeaderMap::new();
            m.insert(header::HOST, HeaderValue::from_static(h));
            a.host_allowed(&m)
        };
        assert!(host("127.0.0.1:9320") && host("localhost:9320") && host("[::1]:9320"));
        assert!(host("192.168.1.20:9320"), "the gateway's LAN address");
        assert!(!host("evil.example:9320"), "a rebound name");
        assert!(!host("127.0.0.1:80") && !host("127.0.0.1"));
        assert!(!a.host_allowed(&HeaderMap::new()));
    }

    #[test]
    fn five_wrong_passwords_lock_the_address_out_even_for_the_right_one() {
        let a = auth();
        let ip: IpAddr = "192.0.2.7".parse().unwrap();
        for _ in 0..FREE_ATTEMPTS {
            assert!(matches!(a.login(ip, "falsch"), Err(Refusal::WrongPassword)));
        }
        assert!(matches!(
            a.login(ip, "richtig"),
            Err(Refusal::Throttled(w)) if w > FIRST_LOCK - Duration::from_secs(2)
        ));
        let other: IpAddr = "192.0.2.8".parse().unwrap();
        assert!(
            a.login(other, "richtig").is_ok(),
            "another address is not locked"
        );
    }

    #[test]
    fn hashes_are_salted_argon2id_and_verify() {
        let h1 = hash("pw").unwrap();
        assert!(h1.starts_with("$argon2id$"), "{h1}");
        assert_ne!(h1, hash("pw").unwrap(), "salted");
        assert!(verify(&h1, "pw"));
        assert!(!verify(&h1, "pW"));
        assert!(!verify("not a hash", "pw"));
    }
}
