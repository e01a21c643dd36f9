//! The installer's console in the browser, served by the running daemon (docs/console.md): each camera's
//! live picture with the model's boxes, a zone and mask editor over it, ground calibration, rule forms that
//! follow the configuration's own keys, a save that validates like `check`, keeps a backup and reloads, the
//! pole's latest incidents with their evidence, and the `check` table.
//!
//! Off unless `[console]` is configured; loopback by default; every `/api` route but the login needs a
//! session ([`auth`]). Pages, script and style are compiled into the binary: the pole is offline.

mod api;
pub mod auth;
pub mod edit;
pub mod schema;

use crate::config::LoadedConfig;
use crate::daemon::Handles;
use axum::Router;
use axum::http::{HeaderValue, header};
use axum::response::IntoResponse;
use axum::routing::{get, post};
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

/// One row of the `check` table as the console shows it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct CheckRow {
    pub item: String,
    pub pass: bool,
    pub detail: String,
    pub fix: Option<String>,
}

/// Runs `streetsight check` on a configuration (given by the caller: the check lives above the console).
pub type CheckRunner =
    Arc<dyn Fn(LoadedConfig) -> Pin<Box<dyn Future<Output = Vec<CheckRow>> + Send>> + Send + Sync>;

/// What every handler shares.
pub(crate) struct Console {
    pub(crate) auth: auth::Auth,
    pub(crate) handles: Handles,
    pub(crate) check: CheckRunner,
    pub(crate) keep_backups: usize,
    /// Each camera's analysed-frame count when last asked, for its analysed frame rate.
    pub(crate) rates:
        std::sync::Mutex<std::collections::HashMap<String, (u64, std::time::Instant)>>,
    /// One save at a time (the file is read, edited, checked, written and reloaded as one step).
    pub(crate) saving: tokio::sync::Mutex<()>,
    /// One check at a time: it loads and runs every model once.
    pub(crate) checking: tokio::sync::Mutex<()>,
    /// One password check at a time: Argon2 takes 19 MiB and tens of ms each, and the throttle must see
    /// each wrong password before the next is tried.
    pub(crate) logins: tokio::sync::Semaphore,
}

/// The daemon with its console (`streetsight run`): [`crate::daemon::run`], and once it has started, the
/// console if `[console]` is configured.
pub async fn run_daemon(
    loaded: LoadedConfig,
    shutdown: crate::base::Shutdown,
    drain: Duration,
) -> anyhow::Result<Arc<crate::uplink::UplinkStats>> {
    let (copy, stop) = (loaded.clone(), shutdown.clone());
    crate::daemon::run_with(loaded, shutdown, drain, move |handles| {
        start(&copy, handles, check_runner(), stop)
    })
    .await
}

/// `streetsight check` as the console runs it: cameras and broker probed, models run once.
pub fn check_runner() -> CheckRunner {
    Arc::new(|loaded: LoadedConfig| {
        Box::pin(async move {
            let opts = crate::cli::check::CheckOptions::default();
            crate::cli::check::run(&loaded, &opts)
                .await
                .rows
                .into_iter()
                .map(|r| CheckRow {
                    item: r.item,
                    pass: r.outcome == crate::cli::check::Outcome::Pass,
                    detail: r.detail,
                    fix: r.fix,
                })
                .collect()
        })
    })
}

/// The console for `streetsight demo --console PORT`: loopback, a password made up now and printed.
pub fn for_demo(port: u16) -> anyhow::Result<crate::cli::demo::DemoConsole> {
    use rand::RngCore;
    let mut bytes = [0u8; 9];
    rand::rng().fill_bytes(&mut bytes);
    let password: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    let listen = format!("127.0.0.1:{port}");
    println!("demo: installer console at http://{listen}/ — password {password}");
    Ok(crate::cli::demo::DemoConsole {
        listen,
        password_hash: auth::hash(&password)?,
        start: Box::new(|loaded, handles, stop| start(loaded, handles, check_runner(), stop)),
    })
}

/// `streetsight console-password`: read a password (twice at a terminal, once from a pipe) and print the
/// `[console]` line that holds its hash. The password itself is never printed or stored.
pub fn print_password_hash() -> anyhow::Result<()> {
    use std::io::IsTerminal;
    let password = if std::io::stdin().is_terminal() {
        let first = rpassword::prompt_password("Console password: ")?;
        let again = rpassword::prompt_password("Again: ")?;
        anyhow::ensure!(first == again, "the two passwords differ; nothing printed");
        first
    } else {
        let mut line = String::new();
        std::io::stdin().read_line(&mut line)?;
        line.trim_end_matches(['\r', '\n']).to_string()
    };
    anyhow::ensure!(
        password.chars().count() >= 8,
        "use at least 8 characters; the console may face a street-side network"
    );
    println!("password_hash = \"{}\"", auth::hash(&password)?);
    Ok(())
}

/// Start the console if `loaded` configures one; it serves until `shutdown`. A console that cannot bind is
/// logged and left off: the pole goes on without it.
pub fn start(
    loaded: &LoadedConfig,
    handles: Handles,
    check: CheckRunner,
    shutdown: crate::base::Shutdown,
) {
    let Some(c) = &loaded.config.console else {
        return;
    };
    let c = c.get_ref();
    let Ok(addr) = c.listen.get_ref().parse::<SocketAddr>() else {
        tracing::error!("console.listen is not an address; the console is off.");
        return;
    };
    let console = Arc::new(Console {
        auth: auth::Auth::new(
            c.password_hash.get_ref().clone(),
            Duration::from_secs(c.session_idle_min.get_ref() * 60),
            addr.port(),
        ),
        handles,
        check,
        keep_backups: *c.keep_backups.get_ref() as usize,
        rates: Default::default(),
        saving: Default::default(),
        checking: Default::default(),
        logins: tokio::sync::Semaphore::new(1),
    });
    tokio::spawn(async move {
        let listener = match tokio::net::TcpListener::bind(addr).await {
            Ok(l) => l,
            Err(error) => {
                tracing::error!(%addr, %error, "Console could not start; the pole runs on without it.");
                return;
            }
        };
        tracing::info!(%addr, "Installer console listening.");
        serve(listener, console, shutdown).await;
    });
}

/// Serve on `listener` until `shutdown`.
pub(crate) async fn serve(
    listener: tokio::net::TcpListener,
    console: Arc<Console>,
    shutdown: crate::base::Shutdown,
) {
    let app = router(console);
    let served = axum::serve(
        listener,
        app.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(async move { shutdown.wait().await })
    .await;
    if let Err(error) = served {
        tracing::error!(%error, "Console stopped.");
    }
}

fn router(console: Arc<Console>) -> Router {
    let api = Router::new()
        .route("/session", get(api::session))
        .route("/logout", post(api::logout))
        .route("/cameras", get(api::cameras))
        .route("/cameras/{id}/live.jpg", get(api::live_jpeg))
        .route("/cameras/{id}/live", get(api::live))
        .route(
            "/cameras/{id}/config",
            get(api::camera_config).post(api::save),
        )
        .route(
            "/cameras/{id}/zones/{zone}/reference",
            post(api::take_reference),
        )
        .route("/areas", post(api::areas))
        .route("/incidents", get(api::incidents))
        .route("/evidence/{name}", get(api::evidence))
        .route("/check", post(api::check))
        .layer(axum::middleware::from_fn_with_state(
            console.clone(),
            api::admit,
        ))
        .route("/login", post(api::login));
    Router::new()
        .route("/", get(|| asset("text/html; charset=utf-8", INDEX_HTML)))
        .route(
            "/app.js",
            get(|| asset("text/javascript; charset=utf-8", APP_JS)),
        )
        .route(
            "/app.css",
            get(|| asset("text/css; charset=utf-8", APP_CSS)),
        )
        .nest("/api", api)
        .layer(axum::middleware::map_response(secure_headers))
        .with_state(console)
}

static INDEX_HTML: &[u8] = include_bytes!("assets/index.html");
static APP_JS: &[u8] = include_bytes!("assets/app.js");
static APP_CSS: &[u8] = include_bytes!("assets/app.css");

async fn asset(kind: &'static str, body: &'static [u8]) -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, kind),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        body,
    )
}

/// Every response: no sniffing, no framing, scripts and styles from the console only, nothing cached
/// unless said otherwise.
async fn secure_headers(mut response: axum::response::Response) -> axum::response::Response {
    let h = response.headers_mut();
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'self'; img-src 'self' blob: data:; script-src 'self'; style-src 'self'; connect-src 'self'; frame-ancestors 'none'; form-action 'self'; base-uri 'none'",
        ),
    );
    h.entry(header::CACHE_CONTROL)
        .or_insert(HeaderValue::from_static("no-store"));
    response
}
