//! The one TOML configuration file: device identity, uplink, storage, models, cameras with their zones and
//! rules, and the work-order codes for each category.
//!
//! Structs here are plain serde with `deny_unknown_fields` and the spans of their values; defaults are named
//! functions so that the default is written once and documented where it lives. This module only parses:
//! `crate::plan` checks every cross-field rule (reporting *all* problems at once, each with `file:line` and
//! how to fix it) and builds each stage's settings. No stage reads these structs.

pub mod categories;
mod health;
mod load;
mod ops;
mod rules;

pub use categories::{CategoryCodes, default_categories};
pub use health::HealthConfig;
pub use load::{
    ConfigError, ConfigErrors, Lines, LoadedConfig, MAX_CONFIG_BYTES, from_toml, parse, parse_str,
    resolve,
};
pub use ops::{ConsoleConfig, OpsConfig};
pub use rules::{
    Anchor, BIN_OVERFLOW, CROWD_INCIDENT_CLEAR_S, CrowdLevelConfig, CrowdRuleConfig, GroundConfig,
    IncidentConfig, LAUNDRY, MaskConfig, PRESENCE_CLEAR_S, PersistenceDefaults,
    PersistenceRuleConfig, PresenceRuleConfig, SCENE_CLEAR_S, SceneRuleConfig, ScheduleConfig,
    VENDING_CLEAR_S, VendingRuleConfig, ZONE_STATE_CLEAR_S, ZoneStateRuleConfig,
};

use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::PathBuf;
use toml::Spanned;

/// The whole configuration file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Who this gateway is.
    pub device: DeviceConfig,
    /// Where incidents go.
    pub uplink: UplinkConfig,
    /// Where state and evidence live on the gateway.
    #[serde(default)]
    pub storage: StorageConfig,
    /// Installed model bundles, by the name cameras refer to them with.
    #[serde(default)]
    pub models: BTreeMap<String, Spanned<ModelConfig>>,
    /// Work-order codes per category; merged over the shipped defaults.
    #[serde(default)]
    pub categories: BTreeMap<String, Spanned<CategoryCodes>>,
    /// Operations: the local health and metrics endpoint.
    #[serde(default)]
    pub ops: OpsConfig,
    /// The installer's console in the browser; off when absent.
    #[serde(default)]
    pub console: Option<Spanned<ConsoleConfig>>,
    /// What evidence images show and hide.
    #[serde(default)]
    pub evidence: EvidenceConfig,
    /// Which keys may sign model bundles, and whether unsigned ones are refused.
    #[serde(default)]
    pub model_trust: ModelTrustConfig,
    /// The cameras on this pole.
    #[serde(default, rename = "camera")]
    pub cameras: Vec<Spanned<CameraConfig>>,
}

/// Signed model bundles: the minisign public keys this pole trusts.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelTrustConfig {
    /// minisign public keys: a `.pub` file (relative to this file's directory) or the key itself
    /// (`RWQ…`, the second line of the `.pub` file). A bundle signed by another key is refused.
    #[serde(default)]
    pub keys: Vec<Spanned<String>>,
    /// Refuse bundles without a signature (`manifest.toml.minisig`) by one of `keys`.
    #[serde(default)]
    pub require_signature: Option<Spanned<bool>>,
}

impl ModelTrustConfig {
    pub fn required(&self) -> bool {
        self.require_signature
            .as_ref()
            .is_some_and(|r| *r.get_ref())
    }
}

/// Evidence images: privacy and what is sent.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EvidenceConfig {
    /// Obscure the head region of every person before an image leaves the pole (PIPL art. 26).
    #[serde(default = "default_true")]
    pub blur_faces: bool,
    /// Also send the frame without drawings (still with faces obscured) beside the annotated one.
    #[serde(default = "default_true")]
    pub clean_frame: bool,
    /// Top share of a person box treated as the head.
    #[serde(default = "default_head_fraction")]
    pub head_fraction: Spanned<f32>,
}

impl Default for EvidenceConfig {
    fn default() -> Self {
        Self {
            blur_faces: true,
            clean_frame: true,
            head_fraction: default_head_fraction(),
        }
    }
}

/// Device identity, as the work-order system knows it.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeviceConfig {
    /// Short id used in MQTT topics: letters, digits, `-` and `_`.
    pub id: Spanned<String>,
    /// Human-readable name shown to dispatchers.
    #[serde(default)]
    pub name: Option<String>,
    /// Optional GB/T 28181 20-digit device id (8 centre + 2 industry + 3 type + 1 network + 6 serial).
    #[serde(default)]
    pub gb28181_id: Option<Spanned<String>>,
    /// IANA time zone for rule schedules and evidence captions.
    #[serde(default = "default_timezone")]
    pub timezone: Spanned<String>,
    /// Where the pole stands, in words a dispatcher files by (e.g. "文三路与学院路交叉口东北角"); a camera's
    /// or a zone's own `address` is more precise and wins.
    #[serde(default)]
    pub address: Option<Spanned<String>>,
    /// The language of each event's `description` and of its evidence caption: `zh-CN` (default) or `en`.
    #[serde(default)]
    pub language: crate::base::Language,
    /// The TrueType/OpenType file (or `.ttc` collection, its first face) `zh-CN` evidence captions are drawn
    /// with, an absolute path. Unset: the first of Debian's Chinese fonts that is installed
    /// (fonts-wqy-microhei, fonts-wqy-zenhei, fonts-noto-cjk); none installed: captions are in English.
    #[serde(default)]
    pub caption_font: Option<Spanned<PathBuf>>,
    /// City-specific fields every event carries in its `extensions` object (a camera's and a zone's own
    /// `extensions` add to and override these).
    #[serde(default)]
    pub extensions: Option<Spanned<toml::Table>>,
}

/// MQTT uplink.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UplinkConfig {
    /// `mqtts://host:port` (TLS, the default port 8883) or `mqtt://host:port` (plain TCP, only when chosen
    /// explicitly with this scheme) — or a list of them, the nodes of one cluster: the pole connects to the
    /// first and, when a connection fails, goes on to the next.
    pub broker: Spanned<Brokers>,
    /// Topic prefix; the device id is appended: `{prefix}/{device_id}/events`.
    #[serde(default = "default_topic_prefix")]
    pub topic_prefix: Spanned<String>,
    /// Seconds between `telemetry` messages.
    #[serde(default = "default_telemetry_s")]
    pub telemetry_s: Spanned<u64>,
    /// MQTT client id; defaults to `streetsight-{device_id}`.
    #[serde(default)]
    pub client_id: Option<Spanned<String>>,
    /// Keep-alive interval in seconds.
    #[serde(default = "default_keep_alive_s")]
    pub keep_alive_s: Spanned<u64>,
    /// TLS material for `mqtts://`.
    #[serde(default)]
    pub tls: Option<Spanned<TlsConfig>>,
    /// Optional MQTT username (most city brokers use client certificates instead).
    #[serde(default)]
    pub username: Option<Spanned<String>>,
    /// File holding the MQTT password (never logged).
    #[serde(default)]
    pub password_file: Option<PathBuf>,
    /// `"5"` (MQTT 5: content types, message expiry) or `"3.1.1"` for brokers that know nothing newer.
    #[serde(default)]
    pub protocol: MqttProtocol,
    /// Accept commands on `cmd/{name}` (snapshot, verify, suppress, unsuppress, suppressions, incidents,
    /// scene_reference, reload).
    #[serde(default = "default_true")]
    pub commands: bool,
    /// A command's timestamp may differ from the gateway's clock by at most this many seconds
    /// (anti-replay, together with its nonce).
    #[serde(default = "default_command_max_skew_s")]
    pub command_max_skew_s: Spanned<u64>,
    /// How long `snapshot`, `verify` and `scene_reference` wait for the camera's next analysed frame
    /// before answering `timeout` (longer for long GOPs or slow accelerators).
    #[serde(default = "default_command_wait_s")]
    pub command_wait_s: Spanned<u64>,
}

/// One broker URL, or a list of them to fail over between.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Brokers(pub Vec<String>);

impl<'de> Deserialize<'de> for Brokers {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Urls;
        impl<'de> serde::de::Visitor<'de> for Urls {
            type Value = Brokers;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a broker URL (\"mqtts://host:8883\") or a list of them")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Brokers, E> {
                Ok(Brokers(vec![v.to_string()]))
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut seq: A,
            ) -> Result<Brokers, A::Error> {
                let mut urls = Vec::new();
                while let Some(url) = seq.next_element::<String>()? {
                    urls.push(url);
                }
                Ok(Brokers(urls))
            }
        }
        d.deserialize_any(Urls)
    }
}

/// The MQTT protocol version spoken to the broker.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
pub enum MqttProtocol {
    /// MQTT 5 (EMQX, VerneMQ, HiveMQ and mosquitto ≥ 1.6 speak it).
    #[default]
    #[serde(rename = "5")]
    V5,
    /// MQTT 3.1.1.
    #[serde(rename = "3.1.1")]
    V311,
}

/// TLS files for the broker connection.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    /// PEM file with the CA that signed the broker's certificate.
    pub ca: PathBuf,
    /// PEM client certificate (mutual TLS); requires `key`.
    #[serde(default)]
    pub cert: Option<PathBuf>,
    /// PEM private key of the client certificate.
    #[serde(default)]
    pub key: Option<PathBuf>,
}

/// State and evidence on the gateway's flash.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StorageConfig {
    /// Directory for state (outbox, evidence).
    #[serde(default = "default_state_dir")]
    pub state_dir: Spanned<PathBuf>,
    /// JPEG quality of evidence images (1–100).
    #[serde(default = "default_jpeg_quality")]
    pub jpeg_quality: Spanned<u8>,
    /// Upper bound of the outbox's payload bytes, in MiB; over it, evidence is dropped before events.
    #[serde(default = "default_outbox_max_mb")]
    pub outbox_max_mb: Spanned<u64>,
    /// Records older than this many hours are dropped from the outbox (evidence and events alike).
    #[serde(default = "default_outbox_max_age_h")]
    pub outbox_max_age_h: Spanned<u64>,
    /// Evidence images kept on the gateway (`state_dir/evidence/`), in MiB; oldest removed first. 0: none
    /// kept beyond the outbox.
    #[serde(default = "default_evidence_max_mb")]
    pub evidence_max_mb: Spanned<u64>,
    /// Evidence images older than this many hours are removed (the retention period).
    #[serde(default = "default_evidence_max_age_h")]
    pub evidence_max_age_h: Spanned<u64>,
    /// Space on the state directory's disk kept for events, in MiB: evidence (queued or archived) is
    /// written only while it leaves this much free.
    #[serde(default = "default_reserve_mb")]
    pub reserve_mb: Spanned<u64>,
}

impl Default for StorageConfig {
    fn default() -> Self {
        Self {
            state_dir: default_state_dir(),
            jpeg_quality: default_jpeg_quality(),
            outbox_max_mb: default_outbox_max_mb(),
            outbox_max_age_h: default_outbox_max_age_h(),
            evidence_max_mb: default_evidence_max_mb(),
            evidence_max_age_h: default_evidence_max_age_h(),
            reserve_mb: default_reserve_mb(),
        }
    }
}

/// A model bundle and how to run it.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelConfig {
    /// Bundle directory holding `manifest.toml` and the `.onnx` file; relative paths are resolved against
    /// the configuration file's directory.
    pub path: PathBuf,
    /// Intra-op threads for ONNX Runtime; unset: chosen from the cores and the model's cameras
    /// (`plan::model_parallelism`).
    #[serde(default)]
    pub threads: Option<usize>,
    /// Worker threads running this model, each with its own session and its share of the cameras (camera
    /// i goes to worker i mod workers). Several single-threaded workers use a multi-core gateway better
    /// than one worker with several intra-op threads when many cameras share a small model. Unset: chosen
    /// from the cores and the model's cameras.
    #[serde(default)]
    pub workers: Option<usize>,
    /// After `model_activate`, how long the pole watches the new version: inference that keeps failing or
    /// runs over `latency_budget_ms` within this time sends it back to the last good version by itself.
    #[serde(default = "default_probation_s")]
    pub probation_s: u64,
    /// During probation, the median inference time (over the last 10 frames) a new version may take.
    #[serde(default = "default_latency_budget_ms")]
    pub latency_budget_ms: u64,
    /// The largest bundle archive `model_install` downloads.
    #[serde(default = "default_max_download_mb")]
    pub max_download_mb: u64,
    /// Installed versions kept on disk (the active one, the one a rollback goes to and the last good one
    /// are always kept).
    #[serde(default = "default_keep_versions")]
    pub keep_versions: usize,
}

/// Transport for RTSP.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RtspTransport {
    /// TCP, and UDP when the camera offers no stream over TCP (said in the log and by `check`).
    Auto,
    Tcp,
    Udp,
}

/// Video codec of the camera stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Codec {
    H264,
    H265,
}

/// How frames are sampled for analysis.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, tag = "mode", rename_all = "snake_case")]
pub enum Sampling {
    /// Decode only keyframes (delta frames are dropped before the decoder: ~8× less CPU).
    Keyframe,
    /// Decode every frame but analyse at most one every `interval_ms`.
    Interval {
        /// Minimum spacing of analysed frames, in milliseconds.
        interval_ms: u64,
    },
}

/// One camera on the pole.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CameraConfig {
    /// Short id: letters, digits, `-` and `_`.
    pub id: String,
    /// Name shown to dispatchers.
    #[serde(default)]
    pub name: Option<String>,
    /// The camera's GB/T 28181 20-digit channel id (type 131 camera or 132 IPC), as the video platform
    /// knows it.
    #[serde(default)]
    pub gb28181_id: Option<Spanned<String>>,
    /// What this camera looks at, in words (wins over the device's `address`).
    #[serde(default)]
    pub address: Option<Spanned<String>>,
    /// City-specific fields of this camera's events (over the device's).
    #[serde(default)]
    pub extensions: Option<Spanned<toml::Table>>,
    /// `rtsp://host[:port]/path`. Credentials belong in `username`/`password_file`/`password_env`; if the URL
    /// carries them anyway they are redacted in every log line.
    pub url: Spanned<String>,
    /// RTSP user name.
    #[serde(default)]
    pub username: Option<String>,
    /// File holding the RTSP password.
    #[serde(default)]
    pub password_file: Option<PathBuf>,
    /// Environment variable holding the RTSP password.
    #[serde(default)]
    pub password_env: Option<String>,
    /// `auto` (default: TCP, which survives NAT and lossy links; UDP when the camera offers no stream over
    /// TCP), `tcp` or `udp`.
    #[serde(default = "default_transport")]
    pub transport: RtspTransport,
    /// `h264` (default) or `h265`.
    #[serde(default = "default_codec")]
    pub codec: Codec,
    /// Decoder template from `pipelines/` (`software` by default).
    #[serde(default = "default_decoder")]
    pub decoder: String,
    /// Frame sampling.
    #[serde(default = "default_sampling")]
    pub sampling: Sampling,
    /// Name of the model (a key of `[models]`) that analyses this camera.
    pub model: Spanned<String>,
    /// Polygons in normalised image coordinates (0..1, origin top-left).
    #[serde(default, rename = "zone")]
    pub zones: Vec<Spanned<ZoneConfig>>,
    /// Areas whose detections are ignored.
    #[serde(default, rename = "mask")]
    pub masks: Vec<Spanned<MaskConfig>>,
    /// Ground-plane calibration for zone areas in m².
    #[serde(default)]
    pub ground: Option<Spanned<GroundConfig>>,
    /// Crowd-density rules (`[[camera.crowd_density]]`); each rule type has its own table array so that
    /// every key is checked against that type's parameters.
    #[serde(default)]
    pub crowd_density: Vec<Spanned<CrowdRuleConfig>>,
    /// Street-vending rules.
    #[serde(default)]
    pub street_vending: Vec<Spanned<VendingRuleConfig>>,
    /// Hanging-laundry rules (K of N samples of a laundry class).
    #[serde(default)]
    pub hanging_laundry: Vec<Spanned<PersistenceRuleConfig>>,
    /// Bin-overflow rules (K consecutive samples of an overflow class).
    #[serde(default)]
    pub bin_overflow: Vec<Spanned<PersistenceRuleConfig>>,
    /// Generic presence-in-zone rules.
    #[serde(default)]
    pub presence: Vec<Spanned<PresenceRuleConfig>>,
    /// Model-free change-against-reference rules.
    #[serde(default)]
    pub scene_change: Vec<Spanned<SceneRuleConfig>>,
    /// Zone states learned from labelled examples (`[[camera.zone_state]]`).
    #[serde(default)]
    pub zone_state: Vec<Spanned<ZoneStateRuleConfig>>,
    /// Camera health checks (moved, covered, blurred, frozen, brightness, colour); all on by default.
    #[serde(default)]
    pub health: HealthConfig,
}

/// A zone of a camera's view.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ZoneConfig {
    /// Short id, unique within the camera.
    pub id: String,
    /// Name shown to dispatchers.
    #[serde(default)]
    pub name: Option<String>,
    /// Polygon vertices `[x, y]`, normalised 0..1; at least 3.
    pub points: Spanned<Vec<[f64; 2]>>,
    /// Real ground area of the zone in m² (needed for densities unless the camera has `[camera.ground]`).
    #[serde(default)]
    pub area_m2: Option<Spanned<f64>>,
    /// How membership is decided: `auto` (people by foot point, objects by overlap), `bottom_centre`,
    /// `overlap`.
    #[serde(default)]
    pub anchor: Anchor,
    /// With overlap membership: the share of the box that must lie inside.
    #[serde(default = "default_min_overlap")]
    pub min_overlap: Spanned<f32>,
    /// Consecutive samples an object must be inside before it counts as in the zone.
    #[serde(default = "default_inertia")]
    pub inertia: u32,
    /// 15-digit unit-grid code (单元网格): 6 division + 3 street + 3 community + 3 grid.
    #[serde(default)]
    pub grid_code: Option<Spanned<String>>,
    /// WGS-84 latitude of the zone.
    #[serde(default)]
    pub lat: Option<f64>,
    /// WGS-84 longitude of the zone.
    #[serde(default)]
    pub lon: Option<f64>,
    /// Where the zone is, in words (wins over the camera's and the device's `address`).
    #[serde(default)]
    pub address: Option<Spanned<String>>,
    /// City-specific fields of this zone's events (over the camera's and the device's).
    #[serde(default)]
    pub extensions: Option<Spanned<toml::Table>>,
}

fn default_topic_prefix() -> Spanned<String> {
    Spanned::new(0..0, "streetsight/v1".into())
}
fn default_telemetry_s() -> Spanned<u64> {
    Spanned::new(0..0, 60)
}
fn default_keep_alive_s() -> Spanned<u64> {
    Spanned::new(0..0, 30)
}
fn default_state_dir() -> Spanned<PathBuf> {
    Spanned::new(0..0, "/var/lib/streetsight".into())
}
fn default_jpeg_quality() -> Spanned<u8> {
    Spanned::new(0..0, 85)
}
/// 256 MiB: about 2,500 events with evidence, or days of events alone, on flash a gateway can spare.
fn default_outbox_max_mb() -> Spanned<u64> {
    Spanned::new(0..0, 256)
}
/// A week: longer outages than that need an installer anyway.
fn default_outbox_max_age_h() -> Spanned<u64> {
    Spanned::new(0..0, 168)
}
/// 128 MiB of JPEGs: about a thousand incidents' evidence.
fn default_evidence_max_mb() -> Spanned<u64> {
    Spanned::new(0..0, 128)
}
/// Three days: long enough for a dispatcher's query, short enough for PIPL's "only as long as needed".
fn default_evidence_max_age_h() -> Spanned<u64> {
    Spanned::new(0..0, 72)
}
/// 8 MiB: thousands of events (≈ 2 KiB each) while the disk is otherwise full.
fn default_reserve_mb() -> Spanned<u64> {
    Spanned::new(0..0, 8)
}
/// A keyframe-sampled camera delivers a frame at least every GOP (rarely over 10 s).
fn default_command_wait_s() -> Spanned<u64> {
    Spanned::new(0..0, 20)
}
/// Five minutes each way: tolerates a drifting clock, keeps a captured command useless soon after.
fn default_command_max_skew_s() -> Spanned<u64> {
    Spanned::new(0..0, 300)
}
fn default_probation_s() -> u64 {
    600
}
fn default_latency_budget_ms() -> u64 {
    1000
}
fn default_max_download_mb() -> u64 {
    512
}
fn default_keep_versions() -> usize {
    3
}
fn default_transport() -> RtspTransport {
    RtspTransport::Auto
}
fn default_codec() -> Codec {
    Codec::H264
}
fn default_decoder() -> String {
    "software".into()
}
fn default_sampling() -> Sampling {
    Sampling::Keyframe
}
fn default_true() -> bool {
    true
}
fn default_head_fraction() -> Spanned<f32> {
    Spanned::new(0..0, 0.4)
}
/// Cities this is built for are on China Standard Time.
fn default_timezone() -> Spanned<String> {
    Spanned::new(0..0, "Asia/Shanghai".into())
}
fn default_min_overlap() -> Spanned<f32> {
    Spanned::new(0..0, 0.5)
}
/// Two samples: one stray box does not put an object in a zone.
fn default_inertia() -> u32 {
    2
}
