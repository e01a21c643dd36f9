//! `streetsight`: parse the command line, load and validate the configuration, run.

use clap::{Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;
use streetsight::base::Shutdown;

#[derive(Parser)]
#[command(
    name = "streetsight",
    version,
    about = "Edge video analytics for street-pole camera gateways"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the agent.
    Run {
        /// Configuration file.
        #[arg(short, long, default_value = "/etc/streetsight/streetsight.toml")]
        config: PathBuf,
    },
    /// Print the `[console]` password hash line for a password read from the terminal (or stdin).
    ConsolePassword,
    /// Run the city-side bridge: events from the broker → one case per incident in the work-order system.
    Bridge {
        #[arg(short, long, default_value = "/etc/streetsight/bridge.toml")]
        config: PathBuf,
        /// Only check the bridge's configuration and its mapping file (exit 78 on a problem).
        #[arg(long)]
        check: bool,
    },
    /// Validate the configuration; connect to every camera and the broker (a test message, acknowledged);
    /// load every model and run it once. Prints a PASS/FAIL table; exit 1 on any failure, 78 on
    /// configuration errors.
    Check {
        #[arg(short, long, default_value = "/etc/streetsight/streetsight.toml")]
        config: PathBuf,
        /// Only check what needs no network: configuration and models.
        #[arg(long)]
        offline: bool,
        /// Seconds to wait for a camera's first frame and the broker's acknowledgement.
        #[arg(long, default_value_t = 10)]
        timeout: u64,
        /// Make CAMERA's view as it is now its reference view (after re-aiming it on purpose); repeatable.
        #[arg(long = "confirm-view", value_name = "CAMERA")]
        confirm_view: Vec<String>,
    },
    /// One frame from CAMERA with detections, zones, masks and a labelled coordinate grid drawn, as JPEG
    /// (heads obscured): for aiming the camera and reading zone coordinates.
    Snapshot {
        /// Camera id from the configuration.
        camera: String,
        #[arg(short, long, default_value = "/etc/streetsight/streetsight.toml")]
        config: PathBuf,
        /// Output JPEG; default `snapshot-CAMERA.jpg`.
        #[arg(short, long)]
        output: Option<PathBuf>,
        /// Seconds to wait for the frame.
        #[arg(long, default_value_t = 20)]
        timeout: u64,
    },
    /// Take the camera's frame now as the clean reference of one of its scene-change zones (clean the spot
    /// first); kept where the agent reads it at start.
    SceneReference {
        /// Camera id from the configuration.
        camera: String,
        /// Id of a zone with a scene_change rule.
        zone: String,
        #[arg(short, long, default_value = "/etc/streetsight/streetsight.toml")]
        config: PathBuf,
        /// Seconds to wait for the frame.
        #[arg(long, default_value_t = 20)]
        timeout: u64,
    },
    /// A zone-state zone's labelled examples on this pole: import labelled pictures of the camera's view
    /// (DIR/<state>/*.jpg), list them, and judge each by the others (leave-one-out precision and recall).
    Examples {
        /// Camera id from the configuration.
        camera: String,
        /// Id of a zone with a zone_state rule.
        zone: String,
        #[arg(short, long, default_value = "/etc/streetsight/streetsight.toml")]
        config: PathBuf,
        /// Add the pictures under DIR/<state>/ as examples of each state.
        #[arg(long, value_name = "DIR")]
        import: Option<PathBuf>,
        /// Judge each example by all the others and print per-state precision and recall (JSON with --json).
        #[arg(long)]
        evaluate: bool,
        #[arg(long, requires = "evaluate")]
        json: bool,
    },
    /// The whole loop on this machine with no camera: a bundled clip over a local RTSP server, a local
    /// broker, events printed as they arrive.
    Demo {
        /// How long to run, in seconds.
        #[arg(long, default_value_t = 90)]
        duration: u64,
        /// Use this broker (mqtt://host:port) instead of starting a local mosquitto.
        #[arg(long)]
        broker: Option<String>,
        /// H.264 clip to serve instead of the bundled one.
        #[arg(long)]
        clip: Option<PathBuf>,
        /// Model bundle directory instead of the bundled NanoDet.
        #[arg(long)]
        model: Option<PathBuf>,
        /// Keep what arrived in this directory (events.jsonl, evidence/<sha256>.jpg): a recording the
        /// fleet simulator replays.
        #[arg(long)]
        record: Option<PathBuf>,
        /// Also serve the installer console on this loopback port (its password is printed).
        #[arg(long)]
        console: Option<u16>,
    },
    /// Simulated poles for load tests of a broker (cluster) and the bridge: each the agent's own uplink
    /// and outbox, replaying a recording of the real agent (`demo --record`).
    Fleet {
        #[arg(long, default_value_t = 100)]
        poles: usize,
        /// A broker URL (repeat for the nodes of a cluster; poles spread over them and fail over).
        #[arg(long, required = true)]
        broker: Vec<String>,
        /// `5` or `3.1.1` (NATS's MQTT gateway).
        #[arg(long, default_value = "3.1.1")]
        protocol: String,
        /// A `demo --record` directory (default: the one in benches/fleet/recorded).
        #[arg(long)]
        recording: Option<PathBuf>,
        /// Incidents per pole per hour, on average.
        #[arg(long, default_value_t = 12.0)]
        rate: f64,
        /// How long to produce, in seconds.
        #[arg(long, default_value_t = 300)]
        duration: u64,
    },
    /// Installed model bundles: list them, inspect one, verify a bundle directory against its ONNX graph.
    Models {
        #[command(subcommand)]
        command: ModelsCommand,
        /// Also look for bundles here (repeatable); bundles in /usr/share/streetsight/models are always listed.
        #[arg(long, global = true)]
        dir: Vec<PathBuf>,
    },
    /// Measure a model bundle on labelled media: per class precision, recall, F1, AP@0.5 and AP@0.5:0.95,
    /// count error per frame and zone, CPU ms per frame; writes report.json and report.html.
    Eval {
        /// Bundle directory or installed bundle name.
        #[arg(short, long)]
        model: String,
        /// A video file (labels name frames `frame_000123`, from 0) or a directory of pictures.
        #[arg(long)]
        media: PathBuf,
        /// COCO .json, CVAT .xml, or a directory of YOLO .txt files (with obj.names or classes.txt).
        #[arg(long)]
        labels: PathBuf,
        /// A second bundle measured on the same frames; the report shows both and their differences.
        #[arg(long)]
        baseline: Option<String>,
        /// Count per zone of CAMERA in this configuration.
        #[arg(short, long, requires = "camera")]
        config: Option<PathBuf>,
        #[arg(long, requires = "config")]
        camera: Option<String>,
        /// Labelled incidents ({"incidents": [{category, zone, start_s, end_s}]}) to check CAMERA's rules
        /// against, over the whole clip.
        #[arg(long, requires = "camera")]
        incidents: Option<PathBuf>,
        /// The class counted per frame and per zone.
        #[arg(long, default_value = "person")]
        count: String,
        /// Detections count from this score on (the crowd rule's default min_score).
        #[arg(long, default_value_t = 0.5)]
        count_score: f32,
        /// ONNX Runtime threads (1: CPU times are the whole cost of a frame).
        #[arg(long, default_value_t = 1)]
        threads: usize,
        /// Directory for report.json and report.html.
        #[arg(short, long, default_value = "eval-report")]
        out: PathBuf,
        /// Also look for bundles by name here (repeatable).
        #[arg(long)]
        dir: Vec<PathBuf>,
    },
    /// Serve an H.264 clip as an RTSP camera on loopback, in a loop, until stopped (a test camera).
    ServeClip {
        clip: PathBuf,
        #[arg(long, default_value_t = 8554)]
        port: u16,
        #[arg(long, default_value = "/cam")]
        mount: String,
        /// This many independent streams at `{mount}1` … `{mount}N` (N > 1), keyframes spread over the GOP.
        #[arg(long, default_value_t = 1)]
        cameras: usize,
    },
}

#[derive(Subcommand)]
enum ModelsCommand {
    /// Installed bundles: name, version, task, head, label count, licence, whether the manifest holds up.
    List,
    /// One bundle (by directory name, manifest name or path): manifest, the graph's real I/O, labels, hash.
    Inspect { name: String },
    /// Full validation of a bundle directory (every installed bundle without PATH); exit 1 on any problem.
    Verify {
        path: Option<PathBuf>,
        /// A minisign public key (.pub file) to check the bundle's signature against (repeatable).
        #[arg(long)]
        key: Vec<PathBuf>,
    },
    /// Make a key pair for signing bundles: PREFIX.key (secret, encrypted with a password from the
    /// prompt or STREETSIGHT_KEY_PASSWORD) and PREFIX.pub (for the poles' model_trust.keys).
    Keygen {
        prefix: PathBuf,
        /// Leave the secret key unencrypted (for a build machine's own key store).
        #[arg(long)]
        no_password: bool,
    },
    /// Sign a bundle: writes manifest.toml.minisig (the manifest pins the ONNX file's sha256).
    Sign {
        bundle: PathBuf,
        /// The secret key file from `models keygen` (or minisign -G).
        #[arg(long)]
        key: PathBuf,
    },
}

fn main() -> ExitCode {
    limit_malloc_arenas();
    let cli = Cli::parse();
    streetsight::ops::init_logging("info");
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime");
    match cli.command {
        Command::Run { config } => {
            let loaded = match streetsight::plan::load(&config) {
                Ok(l) => l,
                Err(errors) => return config_failure(&errors),
            };
            let shutdown = Shutdown::new();
            runtime.spawn(streetsight::ops::stop_on_signal(shutdown.clone()));
            report(
                runtime
                    .block_on(streetsight::console::run_daemon(
                        loaded,
                        shutdown,
                        Duration::from_secs(10),
                    ))
                    .map(|_| ()),
            )
        }
        Command::Bridge { config, check } => {
            let settings = match streetsight::bridge::load_settings(&config)
                .and_then(|s| streetsight::bridge::mapping::Mapping::load(&s.mapping).map(|_| s))
            {
                Ok(s) => s,
                Err(errors) => return config_failure(&errors),
            };
            if check {
                println!(
                    "{}: the bridge's configuration and mapping are valid",
                    config.display()
                );
                return ExitCode::SUCCESS;
            }
            let shutdown = Shutdown::new();
            runtime.spawn(streetsight::ops::stop_on_signal(shutdown.clone()));
            report(runtime.block_on(streetsight::bridge::run(settings, shutdown)))
        }
        Command::Check {
            config,
            offline,
            timeout,
            confirm_view,
        } => match streetsight::plan::load(&config) {
            Err(errors) => config_failure(&errors),
            Ok(loaded) => {
                let opts = streetsight::cli::check::CheckOptions {
                    offline,
                    timeout: Duration::from_secs(timeout),
                    confirm_view,
                    ..Default::default()
                };
                let report = runtime.block_on(streetsight::cli::check::run(&loaded, &opts));
                print!("{}", report.render());
                if report.passed() {
                    ExitCode::SUCCESS
                } else {
                    ExitCode::FAILURE
                }
            }
        },
        Command::SceneReference {
            camera,
            zone,
            config,
            timeout,
        } => match streetsight::plan::load(&config) {
            Err(errors) => config_failure(&errors),
            Ok(loaded) => report((|| {
                let done = streetsight::cli::scene::take_reference(
                    &loaded,
                    &camera,
                    &zone,
                    Duration::from_secs(timeout),
                )?;
                println!("{done}");
                Ok(())
            })()),
        },
        Command::Examples {
            camera,
            zone,
            config,
            import,
            evaluate,
            json,
        } => match streetsight::plan::load(&config) {
            Err(errors) => config_failure(&errors),
            Ok(loaded) => report((|| {
                use streetsight::cli::examples;
                if let Some(dir) = import {
                    let done = examples::import(&loaded, &camera, &zone, &dir)?;
                    println!("{} examples added", done.added);
                    for why in &done.skipped {
                        println!("skipped {why}");
                    }
                }
                if evaluate {
                    let scores = examples::evaluate(&loaded, &camera, &zone)?;
                    if json {
                        println!("{}", serde_json::to_string_pretty(&scores)?);
                    } else {
                        print!("{}", examples::render_scores(&scores));
                    }
                } else {
                    print!("{}", examples::list(&loaded, &camera, &zone)?);
                }
                Ok(())
            })()),
        },
        Command::Snapshot {
            camera,
            config,
            output,
            timeout,
        } => match streetsight::plan::load(&config) {
            Err(errors) => config_failure(&errors),
            Ok(loaded) => report((|| {
                let shot = streetsight::cli::snapshot::take(
                    &loaded,
                    &camera,
                    Duration::from_secs(timeout),
                )?;
                let path = output.unwrap_or_else(|| format!("snapshot-{camera}.jpg").into());
                std::fs::write(&path, &shot.image.jpeg)?;
                println!("{}: {}", path.display(), shot.summary);
                Ok(())
            })()),
        },
        Command::Demo {
            duration,
            broker,
            clip,
            model,
            record,
            console,
        } => {
            let shutdown = Shutdown::new();
            runtime.spawn(streetsight::ops::stop_on_signal(shutdown.clone()));
            let opts = streetsight::cli::demo::DemoOptions {
                duration: Duration::from_secs(duration),
                broker,
                clip,
                model,
                record,
                console: match console.map(streetsight::console::for_demo).transpose() {
                    Ok(c) => c,
                    Err(e) => return report(Err(e)),
                },
            };
            match runtime.block_on(streetsight::cli::demo::run_demo(opts, shutdown)) {
                Ok(0) => {
                    eprintln!("demo: no incident event arrived; see the log above");
                    ExitCode::FAILURE
                }
                other => report(other.map(|_| ())),
            }
        }
        Command::Fleet {
            poles,
            broker,
            protocol,
            recording,
            rate,
            duration,
        } => {
            let shutdown = Shutdown::new();
            runtime.spawn(streetsight::ops::stop_on_signal(shutdown.clone()));
            let protocol = match protocol.as_str() {
                "5" => streetsight::uplink::Protocol::V5,
                _ => streetsight::uplink::Protocol::V311,
            };
            report(runtime.block_on(
                streetsight::cli::fleet::run(
                    poles,
                    broker,
                    protocol,
                    &recording.unwrap_or_else(|| {
                        streetsight::cli::demo::data_path("benches/fleet/recorded")
                    }),
                    rate,
                    Duration::from_secs(duration),
                    shutdown,
                ),
            ))
        }
        Command::Models { command, dir } => models(command, dir),
        Command::ConsolePassword => report(streetsight::console::print_password_hash()),
        Command::Eval {
            model,
            media,
            labels,
            baseline,
            config,
            camera,
            incidents,
            count,
            count_score,
            threads,
            out,
            mut dir,
        } => report((|| {
            dir.push(streetsight::cli::models::DEFAULT_DIR.into());
            let args = streetsight::cli::eval::EvalArgs {
                model,
                baseline,
                media,
                labels,
                config,
                camera,
                incidents,
                count_class: count,
                count_score,
                threads,
                out,
                dirs: dir,
            };
            let report = streetsight::cli::eval::run(&args)?;
            print!("{}", report.summary());
            println!(
                "report: {} and {}",
                args.out.join("report.html").display(),
                args.out.join("report.json").display()
            );
            Ok(())
        })()),
        Command::ServeClip {
            clip,
            port,
            mount,
            cameras,
        } => report((|| {
            let mounts: Vec<String> = match cameras {
                0 | 1 => vec![mount],
                n => (1..=n).map(|i| format!("{mount}{i}")).collect(),
            };
            let refs: Vec<&str> = mounts.iter().map(String::as_str).collect();
            let server = streetsight::cli::demo::ClipServer::start_mounts_spread(
                streetsight::cli::demo::Clip::load(&clip)?,
                port,
                &refs,
            )?;
            for m in &mounts {
                println!("{}", server.url(m));
            }
            let shutdown = Shutdown::new();
            runtime.block_on(async {
                tokio::spawn(streetsight::ops::stop_on_signal(shutdown.clone()));
                shutdown.wait().await;
            });
            Ok(())
        })()),
    }
}

fn models(command: ModelsCommand, mut dirs: Vec<PathBuf>) -> ExitCode {
    use streetsight::cli::models as bundle;
    dirs.push(bundle::DEFAULT_DIR.into());
    match command {
        ModelsCommand::List => {
            print!("{}", bundle::list(&dirs));
            ExitCode::SUCCESS
        }
        ModelsCommand::Inspect { name } => {
            let Some(dir) = bundle::resolve(&name, &dirs) else {
                eprintln!(
                    "error: no model bundle `{name}` in {}; `streetsight models list` shows what is installed",
                    dirs.iter()
                        .map(|d| d.display().to_string())
                        .collect::<Vec<_>>()
                        .join(", ")
                );
                return ExitCode::FAILURE;
            };
            match bundle::inspect(&dir) {
                Ok(text) => {
                    print!("{text}");
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("error: {e}");
                    ExitCode::FAILURE
                }
            }
        }
        ModelsCommand::Keygen {
            prefix,
            no_password,
        } => report((|| {
            let (secret, public) = streetsight::cli::signing::keygen(&prefix, !no_password)?;
            println!(
                "secret key: {} (keep it off the poles)\npublic key: {} (list it in model_trust.keys)",
                secret.display(),
                public.display()
            );
            Ok(())
        })()),
        ModelsCommand::Sign { bundle, key } => report((|| {
            let (sig, id) = streetsight::cli::signing::sign(&bundle, &key)?;
            println!("signed with key {id}: {}", sig.display());
            Ok(())
        })()),
        ModelsCommand::Verify { path, key } => {
            let trusted = match streetsight::cli::signing::read_keys(&key) {
                Ok(t) => t,
                Err(e) => {
                    eprintln!("error: {e:#}");
                    return ExitCode::FAILURE;
                }
            };
            let targets = match path {
                Some(p) => vec![p],
                None => bundle::find(&dirs),
            };
            if targets.is_empty() {
                eprintln!("error: no model bundles to verify");
                return ExitCode::FAILURE;
            }
            let mut failed = 0;
            for dir in targets {
                let v = bundle::verify(&dir, &trusted);
                print!("{}", v.report());
                failed += usize::from(!v.passed());
            }
            if failed == 0 {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            }
        }
    }
}

fn config_failure(errors: &streetsight::config::ConfigErrors) -> ExitCode {
    eprint!("{errors}");
    ExitCode::from(78) // sysexits EX_CONFIG
}

fn report(result: anyhow::Result<()>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// One glibc heap arena per core, not eight: each kept what its threads freed, 78 MB of 426 at 8 × 1080p for
/// no measurable CPU (docs/benchmarks.md).
fn limit_malloc_arenas() {
    let cores = std::thread::available_parallelism().map_or(2, |n| n.get().clamp(2, 64));
    // SAFETY: mallopt only sets an allocator parameter, first in main, before any thread exists.
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, cores as libc::c_int)
    };
}
