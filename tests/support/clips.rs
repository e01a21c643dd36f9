//! Altered copies of the committed street clip (`tests/media/vtest.mp4`) for the camera-health tests.
//!
//! Each clip starts with a clean lead-in (so the agent can learn what the scene normally looks like) and
//! then the same footage continues with one alteration applied: the camera knocked askew, covered,
//! defocused, frozen, or (the one that must NOT raise a fault) dusk followed by the day/night IR switch.
//! Clips are made on demand with one ffmpeg run instead of being committed: they are cheap to make
//! (about a second each) and the parameters stay readable next to the tests that use them.
//!
//! The output has the same format as vtest.mp4 (H.264 main, yuv420p, 768x576, 10 fps, a keyframe every
//! 10 frames, no B-frames, faststart MP4), so it can be served over RTSP without transcoding and
//! keyframe-only sampling still sees one frame per second.

use anyhow::{Context, bail, ensure};
use std::path::{Path, PathBuf};
use std::process::Command;

/// Format of the committed clip; the filters below are written for it.
const WIDTH: f64 = 768.0;
const HEIGHT: f64 = 576.0;
const FPS: f64 = 10.0;
/// Frames in the committed clip (79.5 s).
const FRAMES: u64 = 795;

/// What happens to the picture after the clean lead-in.
pub enum Alteration {
    /// Rotated by `degrees` about the centre (positive = clockwise), then translated right by `dx`
    /// (fraction of the width) and down by `dy` (fraction of the height); uncovered borders black.
    /// Shifts are rounded to an even number of pixels (yuv420p chroma).
    ShiftRotate { dx: f64, dy: f64, degrees: f64 },
    /// A flat dark-grey patch over `fraction` of the picture: a full-height rectangle anchored at the
    /// left edge, `fraction` of the width wide (tape, a bag, a sign hung over the lens).
    Cover { fraction: f64 },
    /// A strong defocus (Gaussian blur, sigma 8 px on the 768-px frame).
    Blur,
    /// The last clean frame repeated, as from a hung encoder: every decoded frame of the altered part is
    /// byte-identical (to each other; the last clean frame, coded as a P-frame, decodes slightly apart).
    Freeze,
    /// A real object laid in the view: the yellow cloth lying on the grass at the bottom left of the street
    /// clip, cut out of the altered part's first frame (the grass keyed away), scaled by `scale`, turned
    /// `hue` degrees round the colour wheel (0: as it is) and laid with its top-left corner at (`x`, `y`)
    /// pixels — a tarp dumped on the pavement — for the whole altered part.
    Tarp {
        x: u32,
        y: u32,
        scale: f64,
        hue: f64,
    },
    /// Dusk then the IR switch: over the first two thirds of the altered part the brightness falls
    /// linearly to 35 % of the original; for the last third the picture is greyscale at 70 % brightness
    /// with a little temporal luma noise, as a real day/night camera does. Must NOT look like a fault.
    Dusk,
}

impl Alteration {
    /// The filter chain making the altered part from the decoded clip: frames `clean..clean+altered`
    /// (timestamps restarted at 0, so `t` in the expressions is seconds since the alteration began)
    /// with the alteration applied.
    fn chain(&self, clean: u64, altered: u64) -> String {
        let continuation = format!(
            "trim=start_frame={clean}:end_frame={},setpts=PTS-STARTPTS",
            clean + altered
        );
        let altered_s = altered as f64 / FPS;
        let filter = match self {
            Alteration::ShiftRotate { dx, dy, degrees } => {
                let even = |v: f64| 2 * (v / 2.0).round() as i64;
                let (x, y) = (even(dx * WIDTH), even(dy * HEIGHT));
                let (ax, ay) = (x.abs(), y.abs());
                // Pad by |shift| on every side, place the picture shifted, crop back to the frame:
                // one crop+pad that works for either sign of the shift.
                format!(
                    "rotate=a={degrees}*PI/180:c=black,\
                     pad=w=iw+{pw}:h=ih+{ph}:x={px}:y={py}:color=black,\
                     crop=w=iw-{pw}:h=ih-{ph}:x={ax}:y={ay}",
                    pw = 2 * ax,
                    ph = 2 * ay,
                    px = ax + x,
                    py = ay + y,
                )
            }
            Alteration::Cover { fraction } => {
                format!("drawbox=x=0:y=0:w=iw*{fraction}:h=ih:color=0x383838:t=fill")
            }
            Alteration::Blur => "gblur=sigma=8".to_string(),
            Alteration::Tarp { x, y, scale, hue } => {
                let (w, h) = (
                    (100.0 * scale) as u32 / 2 * 2,
                    (40.0 * scale) as u32 / 2 * 2,
                );
                return format!(
                    "{continuation},split=2[base][src];\
                     [src]trim=end_frame=1,crop=100:40:64:490,scale={w}:{h},format=rgba,\
                     colorkey=0x2f4505:0.25:0.1,hue=h={hue},loop=loop=-1:size=1,setpts=N/{FPS}/TB[obj];\
                     [base][obj]overlay=x={x}:y={y}:shortest=1,format=yuv420p"
                );
            }
            // The last clean frame alone; tpad clones it with proper timestamps for the altered part.
            Alteration::Freeze => {
                return format!(
                    "trim=start_frame={}:end_frame={clean},setpts=PTS-STARTPTS,\
                     tpad=stop_mode=clone:stop={}",
                    clean - 1,
                    altered - 1
                );
            }
            Alteration::Dusk => {
                // Brightness factor k: 1 -> 0.35 over the dusk, then 0.7 under IR. eq maps luma as
                // contrast*(y-0.5)+0.5+brightness; contrast=k with brightness=(k-1)*(0.5-16/255) scales
                // luma about video black (16) (+0.005: eq truncates brightness to whole percent), and
                // hue's saturation scales chroma about neutral by the same k, so the dusk is a plain
                // dimming of the RGB picture. Under IR: saturation 0 (exactly neutral chroma; eq's own
                // saturation=0 leaves chroma at 127) and temporal luma noise.
                let ir = altered_s * 2.0 / 3.0;
                let fall = format!("1-0.65*t/{ir}");
                let k = format!("if(lt(t,{ir}),{fall},0.7)");
                format!(
                    "eq=eval=frame:contrast='{k}':brightness='({k}-1)*0.4373+0.005',\
                     hue=s='if(lt(t,{ir}),{fall},0)',\
                     noise=c0s=10:c0f=t:enable='gte(t,{ir})'"
                )
            }
        };
        format!("{continuation},{filter}")
    }
}

/// Write `<dir>/<name>.mp4`: `clean_s` seconds of vtest.mp4 from its start, then `altered_s` seconds
/// continuing from the same point of the original with `alteration` applied (for `Freeze`: the last
/// clean frame repeated for `altered_s`). Durations are rounded to whole frames; with `clean_s` a whole
/// number of seconds (required for `Freeze`) the altered part starts on a keyframe.
pub fn altered_clip(
    dir: &Path,
    name: &str,
    alteration: &Alteration,
    clean_s: f64,
    altered_s: f64,
) -> anyhow::Result<PathBuf> {
    altered_clip_from(dir, name, alteration, 0, clean_s, altered_s)
}

/// [`altered_clip`] made from vtest.mp4 as it continues from `start_s` (whole seconds: a keyframe), so
/// two cameras' clips show different passers-by at the same moment.
pub fn altered_clip_from(
    dir: &Path,
    name: &str,
    alteration: &Alteration,
    start_s: u64,
    clean_s: f64,
    altered_s: f64,
) -> anyhow::Result<PathBuf> {
    let clean = (clean_s * FPS).round() as u64;
    let altered = (altered_s * FPS).round() as u64;
    ensure!(
        clean >= 1 && altered >= 1,
        "clean_s and altered_s must each be at least one frame (0.1 s)"
    );
    let frozen = matches!(alteration, Alteration::Freeze);
    // Frames already in the GOP before the freeze were coded from a different reference, so the frozen
    // part must start on a keyframe (every 10th frame) to decode identical throughout.
    ensure!(
        !frozen || clean.is_multiple_of(10),
        "Freeze needs clean_s to be a whole number of seconds"
    );
    let needed = (start_s as f64 * FPS) as u64 + if frozen { clean } else { clean + altered };
    ensure!(
        needed <= FRAMES,
        "vtest.mp4 has only {FRAMES} frames, {needed} needed"
    );
    // One decode, split in two: the clean lead-in and the altered continuation, concatenated again.
    let graph = format!(
        "[0:v]split=2[c][a];\
         [c]trim=end_frame={clean},setpts=PTS-STARTPTS[c1];\
         [a]{}[a1];\
         [c1][a1]concat=n=2:v=1:a=0[v]",
        alteration.chain(clean, altered)
    );
    // A repeated picture does not by itself decode identical: the P-frame after each keyframe may code a
    // refinement of the keyframe's quantisation error (and CRF moves the QP too). For Freeze: constant QP
    // with keyframes at QP 0 (ipratio 16 = 24 QP steps finer than the P-frames at 24) reproduce the
    // picture to about one level, far below the P-frames' quantiser step, so every P-frame is all skips
    // and every keyframe codes the same. Keyframes 6 or 12 QP finer still left a refined block at some
    // of the freeze points tried; 24 finer left none in 27.
    let rate: &[&str] = if frozen {
        &["-qp", "24", "-x264-params", "ipratio=16"]
    } else {
        &["-crf", "26"]
    };
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let out = dir.join(format!("{name}.mp4"));
    let mut cmd = Command::new("ffmpeg");
    cmd.args(["-nostdin", "-hide_banner", "-loglevel", "error", "-y"])
        // Stop decoding soon after the frames needed (trim makes the exact cut).
        .args(["-ss", &format!("{start_s}")])
        .args([
            "-t",
            &format!("{}", (needed + 1) as f64 / FPS - start_s as f64),
            "-i",
        ])
        .arg(super::clip_path())
        .args(["-filter_complex", &graph, "-map", "[v]"])
        .args(["-c:v", "libx264", "-preset", "veryfast"])
        .args(["-profile:v", "main", "-pix_fmt", "yuv420p"])
        .args(rate)
        .args(["-g", "10", "-keyint_min", "10"])
        .args(["-sc_threshold", "0", "-bf", "0"])
        .args(["-movflags", "+faststart"])
        .arg(&out);
    let shown = format!("{cmd:?}");
    let result = cmd.output().with_context(|| format!("running {shown}"))?;
    if !result.status.success() {
        let stderr = String::from_utf8_lossy(&result.stderr);
        let lines: Vec<&str> = stderr.lines().collect();
        let tail = lines[lines.len().saturating_sub(20)..].join("\n");
        bail!("ffmpeg failed ({}): {shown}\n{tail}", result.status);
    }
    Ok(out)
}

/// Frames of `clip` at `times` (seconds) as JPEGs `<dir>/<prefix>-<t>.jpg`, full size: the labelled
/// pictures an installer would take of the camera's view.
pub fn frames_at(
    clip: &Path,
    times: &[f64],
    dir: &Path,
    prefix: &str,
) -> anyhow::Result<Vec<PathBuf>> {
    std::fs::create_dir_all(dir)?;
    times
        .iter()
        .map(|t| {
            let out = dir.join(format!("{prefix}-{t:05.1}.jpg"));
            let status = Command::new("ffmpeg")
                .args(["-nostdin", "-hide_banner", "-loglevel", "error", "-y"])
                .args(["-ss", &format!("{t}"), "-i"])
                .arg(clip)
                .args(["-frames:v", "1", "-q:v", "2"])
                .arg(&out)
                .status()?;
            ensure!(
                status.success(),
                "ffmpeg could not take the frame at {t} s of {}",
                clip.display()
            );
            Ok(out)
        })
        .collect()
}
