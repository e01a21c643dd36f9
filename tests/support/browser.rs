//! A small blocking W3C WebDriver client for browser tests against Debian's real headless Chromium
//! (`chromium` and `chromium-driver`, which scripts/setup.sh installs): one `chromedriver` on a loopback port
//! it picks itself, one session with a throw-away profile, and the few commands the tests need — navigate,
//! find, type, click, run a script, pointer actions at normalised points on an element, screenshots, cookies.
//! Every failure panics with WebDriver's own `error` and `message`. Dropping the [`Browser`] deletes the
//! session (chromedriver then closes Chromium) and kills and reaps chromedriver.

use serde_json::{Value, json};
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
/// The W3C key under which an element reference travels.
const ELEMENT_KEY: &str = "element-6066-11e4-a52e-4f735466cecf";
/// Screenshots of a large viewport exceed ureq's default 10 MB body limit once base64-encoded.
const BODY_LIMIT: u64 = 256 * 1024 * 1024;

/// How the browser is launched.
#[derive(Clone, Debug)]
pub struct BrowserOptions {
    /// UI and `Accept-Language` language (`--lang`).
    pub lang: String,
    /// Window size; new headless gives a viewport about 140 px shorter (1280×900 → 1280×757).
    pub window: (u32, u32),
}

impl Default for BrowserOptions {
    fn default() -> Self {
        BrowserOptions {
            lang: "zh-CN".to_string(),
            window: (1280, 900),
        }
    }
}

/// A WebDriver error as chromedriver reports it (`value.error`, `value.message`).
#[derive(Debug)]
struct WebDriverError {
    error: String,
    message: String,
}

impl std::fmt::Display for WebDriverError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.error, self.message)
    }
}

/// A headless Chromium driven over WebDriver. Temporary files (profile, TMPDIR, chromedriver.log) live in
/// [`Browser::dir`].
pub struct Browser {
    agent: ureq::Agent,
    /// `http://127.0.0.1:{port}`.
    driver_url: String,
    /// `{driver_url}/session/{id}`, once the session exists.
    session: Option<String>,
    driver: Child,
    dir: tempfile::TempDir,
}

/// An element found in the current page; valid until the page changes.
pub struct Element<'b> {
    browser: &'b Browser,
    id: String,
}

impl Browser {
    /// Chromium in Chinese (`zh-CN`), window 1280×900.
    pub fn start() -> Browser {
        Browser::start_with(BrowserOptions::default())
    }

    pub fn start_with(options: BrowserOptions) -> Browser {
        for exe in [CHROMIUM, CHROMEDRIVER] {
            assert!(
                Path::new(exe).exists(),
                "{exe} is missing: browser tests need Debian's `chromium` and `chromium-driver`; \
                 run scripts/setup.sh"
            );
        }
        let dir = tempfile::Builder::new()
            .prefix("browser-")
            .tempdir()
            .unwrap();
        let tmp = dir.path().join("tmp");
        std::fs::create_dir(&tmp).unwrap();
        let mut driver = Command::new(CHROMEDRIVER)
            .arg("--port=0")
            .arg(format!(
                "--log-path={}",
                dir.path().join("chromedriver.log").display()
            ))
            // Chromium leaves /tmp/org.chromium.Chromium.* behind otherwise.
            .env("TMPDIR", &tmp)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {CHROMEDRIVER}: {e}; run scripts/setup.sh"));
        let port = match read_port(&mut driver) {
            Ok(port) => port,
            Err(why) => {
                let _ = driver.kill();
                let _ = driver.wait();
                panic!("chromedriver did not start: {why}");
            }
        };
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(Duration::from_secs(60)))
            .build()
            .new_agent();
        // From here on, Drop cleans up whatever happens.
        let mut browser = Browser {
            agent,
            driver_url: format!("http://127.0.0.1:{port}"),
            session: None,
            driver,
            dir,
        };
        browser.wait_ready();
        let (w, h) = options.window;
        let args = [
            "--headless=new".to_string(),
            // Required when running as root.
            "--no-sandbox".to_string(),
            "--disable-gpu".to_string(),
            "--disable-dev-shm-usage".to_string(),
            "--disable-background-networking".to_string(),
            "--disable-component-update".to_string(),
            "--disable-sync".to_string(),
            "--no-first-run".to_string(),
            format!("--window-size={w},{h}"),
            format!(
                "--user-data-dir={}",
                browser.dir.path().join("profile").display()
            ),
            format!("--lang={}", options.lang),
        ];
        let caps = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {"binary": CHROMIUM, "args": args},
        }}});
        let url = format!("{}/session", browser.driver_url);
        let created = browser.request("POST", &url, Some(caps));
        let id = created["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("new session without a sessionId: {created}"))
            .to_string();
        browser.session = Some(format!("{url}/{id}"));
        browser.post("/timeouts", json!({"implicit": 3000}));
        browser
    }

    /// Where this browser keeps its profile, TMPDIR and `chromedriver.log`; removed on drop.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    pub fn goto(&self, url: &str) {
        self.post("/url", json!({ "url": url }));
    }

    /// The first element matching `css`, waiting up to the implicit 3 s for it to appear.
    pub fn find(&self, css: &str) -> Element<'_> {
        let found = self.post("/element", json!({"using": "css selector", "value": css}));
        self.element(&found)
    }

    /// All elements matching `css` (waits up to 3 s for at least one; empty if none by then).
    pub fn find_all(&self, css: &str) -> Vec<Element<'_>> {
        let found = self.post("/elements", json!({"using": "css selector", "value": css}));
        found
            .as_array()
            .unwrap_or_else(|| panic!("find_all({css}) returned {found}"))
            .iter()
            .map(|v| self.element(v))
            .collect()
    }

    /// Wait until an element matches `css`, then return it.
    pub fn wait_for(&self, css: &str, timeout: Duration) -> Element<'_> {
        let selector = serde_json::to_string(css).unwrap();
        self.wait_until(
            &format!("document.querySelector({selector}) !== null"),
            timeout,
        );
        self.find(css)
    }

    /// Poll the JavaScript `expression` every 50 ms until it is truthy; panics after `timeout`.
    pub fn wait_until(&self, expression: &str, timeout: Duration) {
        let script = format!("return !!({expression});");
        let deadline = Instant::now() + super::scaled(timeout);
        while self.execute(&script, &[]) != Value::Bool(true) {
            assert!(
                Instant::now() < deadline,
                "`{expression}` still false after {timeout:?}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Run `script` (a function body: use `return`, and `arguments[i]` for `args`, where an element is
    /// passed as [`Element::json`]) and return its result.
    pub fn execute(&self, script: &str, args: &[Value]) -> Value {
        self.post("/execute/sync", json!({"script": script, "args": args}))
    }

    /// A press and release (50 ms apart) at the normalised point `(nx, ny)` of `el` (0,0 top left, 1,1
    /// bottom right).
    pub fn click_at(&self, el: &Element, nx: f64, ny: f64) {
        let (x, y) = self.offset(el, nx, ny);
        let origin = el.json();
        self.pointer(vec![
            json!({"type": "pointerMove", "duration": 0, "origin": origin, "x": x, "y": y}),
            json!({"type": "pointerDown", "button": 0}),
            json!({"type": "pause", "duration": 50}),
            json!({"type": "pointerUp", "button": 0}),
        ]);
    }

    /// Two clicks in quick succession at the normalised point `(nx, ny)` of `el`.
    pub fn double_click_at(&self, el: &Element, nx: f64, ny: f64) {
        let (x, y) = self.offset(el, nx, ny);
        let origin = el.json();
        let mut actions =
            vec![json!({"type": "pointerMove", "duration": 0, "origin": origin, "x": x, "y": y})];
        for _ in 0..2 {
            actions.push(json!({"type": "pointerDown", "button": 0}));
            actions.push(json!({"type": "pause", "duration": 30}));
            actions.push(json!({"type": "pointerUp", "button": 0}));
        }
        self.pointer(actions);
    }

    /// Press at the normalised point `from` of `el`, move there in a few steps to `to`, and release.
    pub fn drag(&self, el: &Element, from: (f64, f64), to: (f64, f64)) {
        const STEPS: u32 = 5;
        let origin = el.json();
        let (x, y) = self.offset(el, from.0, from.1);
        let mut actions = vec![
            json!({"type": "pointerMove", "duration": 0, "origin": origin, "x": x, "y": y}),
            json!({"type": "pointerDown", "button": 0}),
        ];
        for i in 1..=STEPS {
            let t = f64::from(i) / f64::from(STEPS);
            let (nx, ny) = (from.0 + (to.0 - from.0) * t, from.1 + (to.1 - from.1) * t);
            let (x, y) = self.offset(el, nx, ny);
            actions.push(
                json!({"type": "pointerMove", "duration": 20, "origin": origin, "x": x, "y": y}),
            );
        }
        actions.push(json!({"type": "pointerUp", "button": 0}));
        self.pointer(actions);
    }

    /// The viewport as an image.
    pub fn screenshot(&self) -> image::RgbaImage {
        image::load_from_memory_with_format(&self.screenshot_png(), image::ImageFormat::Png)
            .expect("the screenshot is a PNG")
            .to_rgba8()
    }

    /// Save the viewport as PNG to `path`.
    pub fn save_screenshot(&self, path: &Path) {
        std::fs::write(path, self.screenshot_png())
            .unwrap_or_else(|e| panic!("cannot write {}: {e}", path.display()));
    }

    /// The cookie `name` of the current page (`{"name", "value", "path", ...}`), if set.
    pub fn cookie(&self, name: &str) -> Option<Value> {
        match self.try_request("GET", &self.url(&format!("/cookie/{name}")), None) {
            Ok(v) => Some(v),
            Err(e) if e.error == "no such cookie" => None,
            Err(e) => panic!("GET cookie/{name}: {e}"),
        }
    }

    fn screenshot_png(&self) -> Vec<u8> {
        use base64::Engine;
        let encoded = self.get("/screenshot");
        base64::engine::general_purpose::STANDARD
            .decode(encoded.as_str().expect("a screenshot is a base64 string"))
            .expect("the screenshot is valid base64")
    }

    /// WebDriver pointer offsets are integer CSS px from the element's in-view centre. The size comes from
    /// `getBoundingClientRect` (border box, fractional), after scrolling the element into the middle of the
    /// viewport so that the centre WebDriver uses is the box's own.
    fn offset(&self, el: &Element, nx: f64, ny: f64) -> (i64, i64) {
        let size = self.execute(
            "const e = arguments[0]; e.scrollIntoView({block: 'center', inline: 'center'}); \
             const r = e.getBoundingClientRect(); return [r.width, r.height];",
            &[el.json()],
        );
        let (w, h) = (size[0].as_f64().unwrap(), size[1].as_f64().unwrap());
        (
            ((nx - 0.5) * w).round() as i64,
            ((ny - 0.5) * h).round() as i64,
        )
    }

    /// Perform one mouse input sequence, then release all input state so the next sequence starts clean.
    fn pointer(&self, actions: Vec<Value>) {
        self.post(
            "/actions",
            json!({"actions": [{
                "type": "pointer",
                "id": "mouse",
                "parameters": {"pointerType": "mouse"},
                "actions": actions,
            }]}),
        );
        self.request("DELETE", &self.url("/actions"), None);
    }

    fn element(&self, found: &Value) -> Element<'_> {
        let id = found[ELEMENT_KEY]
            .as_str()
            .unwrap_or_else(|| panic!("not an element reference: {found}"));
        Element {
            browser: self,
            id: id.to_string(),
        }
    }

    /// The URL of `path` (`/url`, `/element/{id}/click`, ...) in this session.
    fn url(&self, path: &str) -> String {
        let session = self.session.as_deref().expect("a session exists");
        format!("{session}{path}")
    }

    fn get(&self, path: &str) -> Value {
        self.request("GET", &self.url(path), None)
    }

    fn post(&self, path: &str, body: Value) -> Value {
        self.request("POST", &self.url(path), Some(body))
    }

    fn request(&self, method: &str, url: &str, body: Option<Value>) -> Value {
        self.try_request(method, url, body)
            .unwrap_or_else(|e| panic!("WebDriver {method} {url}: {e}"))
    }

    fn try_request(
        &self,
        method: &str,
        url: &str,
        body: Option<Value>,
    ) -> Result<Value, WebDriverError> {
        let sent = match (method, body) {
            ("GET", _) => self.agent.get(url).call(),
            ("DELETE", _) => self.agent.delete(url).call(),
            (_, body) => self
                .agent
                .post(url)
                .header("content-type", "application/json")
                .send(serde_json::to_vec(&body.unwrap_or_else(|| json!({}))).unwrap()),
        };
        let transport = |e: ureq::Error| WebDriverError {
            error: "transport".to_string(),
            message: e.to_string(),
        };
        let mut response = sent.map_err(transport)?;
        let status = response.status();
        let bytes = response
            .body_mut()
            .with_config()
            .limit(BODY_LIMIT)
            .read_to_vec()
            .map_err(transport)?;
        let reply: Value = serde_json::from_slice(&bytes).map_err(|e| WebDriverError {
            error: format!("HTTP {status}, not JSON"),
            message: format!("{e}: {}", String::from_utf8_lossy(&bytes)),
        })?;
        let value = reply["value"].clone();
        match value["error"].as_str() {
            Some(error) => Err(WebDriverError {
                error: error.to_string(),
                message: value["message"].as_str().unwrap_or_default().to_string(),
            }),
            None if !status.is_success() => Err(WebDriverError {
                error: format!("HTTP {status}"),
                message: reply.to_string(),
            }),
            None => Ok(value),
        }
    }

    /// Poll `GET /status` until chromedriver says it is ready.
    fn wait_ready(&self) {
        let url = format!("{}/status", self.driver_url);
        let deadline = Instant::now() + super::scaled(Duration::from_secs(20));
        loop {
            match self.try_request("GET", &url, None) {
                Ok(v) if v["ready"] == Value::Bool(true) => return,
                Ok(_) | Err(_) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(50))
                }
                other => panic!("chromedriver at {url} not ready: {other:?}"),
            }
        }
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        // Deleting the session makes chromedriver close Chromium and wait for it; only then kill the driver.
        if let Some(session) = &self.session {
            let _ = self.try_request("DELETE", session, None);
        }
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

impl Element<'_> {
    /// The W3C element reference, for [`Browser::execute`] arguments and action origins.
    pub fn json(&self) -> Value {
        json!({ ELEMENT_KEY: self.id })
    }

    pub fn click(&self) {
        self.browser
            .post(&format!("/element/{}/click", self.id), json!({}));
    }

    /// Send keystrokes to the element (appends to what an input already holds).
    pub fn type_text(&self, text: &str) {
        self.browser.post(
            &format!("/element/{}/value", self.id),
            json!({ "text": text }),
        );
    }

    pub fn clear(&self) {
        self.browser
            .post(&format!("/element/{}/clear", self.id), json!({}));
    }

    /// The rendered text, as a user would read it.
    pub fn text(&self) -> String {
        let text = self.browser.get(&format!("/element/{}/text", self.id));
        text.as_str().unwrap_or_default().to_string()
    }

    /// A DOM property (`value`, `checked`, ...); `Null` if unset.
    pub fn property(&self, name: &str) -> Value {
        self.browser
            .get(&format!("/element/{}/property/{name}", self.id))
    }
}

/// Read chromedriver's stdout until it names its port ("ChromeDriver was started successfully on port N."),
/// then keep draining it in a thread so the driver never blocks on a full pipe.
fn read_port(driver: &mut Child) -> Result<u16, String> {
    let stdout = driver.stdout.take().expect("stdout is piped");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut lines = BufReader::new(stdout).lines();
        for line in lines.by_ref() {
            let Ok(line) = line else { break };
            if let Some(rest) = line.split("started successfully on port ").nth(1) {
                let _ = tx.send(rest.trim_end_matches('.').trim().parse::<u16>().ok());
                break;
            }
        }
        for _ in lines {}
    });
    match rx.recv_timeout(super::scaled(Duration::from_secs(20))) {
        Ok(Some(port)) => Ok(port),
        Ok(None) => Err("it printed an unreadable port".to_string()),
        Err(_) => Err("it did not report a port within 20 s (or exited)".to_string()),
    }
}

/// Whether a screenshot shows something: at least [`MIN_COLOURS`] distinct colours, and no single colour
/// covering [`MAX_ONE_COLOUR`] or more of the pixels. A blank or error page is one or two flat colours; a
/// line of anti-aliased text already gives dozens of shades, and the page's background rarely covers more
/// than ~95% of a viewport with real content on it.
pub fn is_non_blank(img: &image::RgbaImage) -> bool {
    let mut counts = std::collections::HashMap::<[u8; 4], u64>::new();
    for p in img.pixels() {
        *counts.entry(p.0).or_default() += 1;
    }
    let total = u64::from(img.width()) * u64::from(img.height());
    let most = counts.values().copied().max().unwrap_or(0);
    total > 0 && counts.len() >= MIN_COLOURS && (most as f64) < MAX_ONE_COLOUR * total as f64
}

/// See [`is_non_blank`].
pub const MIN_COLOURS: usize = 16;
/// See [`is_non_blank`].
pub const MAX_ONE_COLOUR: f64 = 0.98;
