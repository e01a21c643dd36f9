//! A local mosquitto broker on a free loopback port, for the demo and the tests. Killed when dropped.

use std::io::Write;
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct Mosquitto {
    pub port: u16,
    child: Child,
    dir: tempfile::TempDir,
}

/// A free TCP port on loopback (bound and released; good enough for tests on one machine).
pub fn free_port() -> std::io::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

fn mosquitto_binary() -> PathBuf {
    ["/usr/sbin/mosquitto", "/usr/bin/mosquitto"]
        .iter()
        .map(PathBuf::from)
        .find(|p| p.is_file())
        .unwrap_or_else(|| "mosquitto".into())
}

impl Mosquitto {
    /// Start mosquitto on `port` (0: a free one), plain TCP, anonymous, no persistence.
    pub fn start(port: u16) -> anyhow::Result<Mosquitto> {
        Self::start_with(port, "")
    }

    /// Start with the broker's own persistence in `dir`: sessions and queued QoS 1 messages of persistent
    /// subscribers survive a graceful restart (`stop` then `start_persistent` with the same port and dir).
    pub fn start_persistent(port: u16, dir: &std::path::Path) -> anyhow::Result<Mosquitto> {
        set_mode(dir, 0o777)?;
        Self::start_with(
            port,
            &format!(
                "persistence true\npersistence_location {}/\nautosave_interval 1",
                dir.display()
            ),
        )
    }

    /// Start with extra configuration lines (e.g. TLS settings); they override the defaults above them.
    pub fn start_with(port: u16, extra: &str) -> anyhow::Result<Mosquitto> {
        let port = if port == 0 { free_port()? } else { port };
        let dir = tempfile::Builder::new()
            .prefix("streetsight-broker")
            .tempdir()?;
        // mosquitto started as root drops to user `mosquitto`: it must be able to read what we write.
        set_mode(dir.path(), 0o755)?;
        let conf = dir.path().join("mosquitto.conf");
        let mut f = std::fs::File::create(&conf)?;
        writeln!(
            f,
            "listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\nset_tcp_nodelay true\nmax_queued_messages 100000\n{extra}"
        )?;
        drop(f);
        set_mode(&conf, 0o644)?;
        let child = Command::new(mosquitto_binary())
            .arg("-c")
            .arg(&conf)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| {
                anyhow::anyhow!("cannot start mosquitto ({e}); install it with scripts/setup.sh")
            })?;
        let mut broker = Mosquitto { port, child, dir };
        broker.wait_ready(Duration::from_secs(10))?;
        Ok(broker)
    }

    pub fn url(&self) -> String {
        format!("mqtt://127.0.0.1:{}", self.port)
    }

    pub fn dir(&self) -> &std::path::Path {
        self.dir.path()
    }

    fn wait_ready(&mut self, timeout: Duration) -> anyhow::Result<()> {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
                return Ok(());
            }
            if let Some(status) = self.child.try_wait()? {
                let mut err = String::new();
                if let Some(mut e) = self.child.stderr.take() {
                    let _ = std::io::Read::read_to_string(&mut e, &mut err);
                }
                anyhow::bail!("mosquitto exited with {status}: {err}");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        anyhow::bail!(
            "mosquitto did not listen on port {} within {timeout:?}",
            self.port
        )
    }

    /// Stop the broker gracefully (SIGTERM: it saves its persistence first) and wait for it to exit.
    pub fn stop(&mut self) {
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status();
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        self.kill();
    }

    /// Kill the broker (an outage).
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Mosquitto {
    fn drop(&mut self) {
        self.kill();
    }
}

fn set_mode(p: &std::path::Path, mode: u32) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode))
}
