//! Examples on disk: a record and its crop per example, written whole-or-nothing, and the cap per state.

use super::{ExampleError, ExampleSpec, StoredExample};
use crate::base::{ImageView, dot, write_atomic};
use crate::incident::evidence;
use std::path::Path;
use std::time::SystemTime;

/// Every readable example record in `dir`, oldest first; unreadable ones are logged and left out.
pub fn load_examples(dir: &Path) -> Vec<StoredExample> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut out: Vec<StoredExample> = entries
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .filter_map(|p| {
            let read = crate::base::read_text_capped(&p, 1024 * 1024)
                .map_err(|e| e.to_string())
                .and_then(|t| serde_json::from_str(&t).map_err(|e| e.to_string()));
            read.map_err(|error| tracing::warn!(file = %p.display(), %error, "Zone example unreadable; left out."))
                .ok()
        })
        .collect();
    out.sort_by(|a, b| (&a.created, &a.id).cmp(&(&b.created, &b.id)));
    out
}

/// Keep `example` with the crop it was made from: the picture first, the record last.
pub fn store_example(dir: &Path, example: &StoredExample, crop_jpeg: &[u8]) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    write_atomic(&dir.join(format!("{}.jpg", example.id)), crop_jpeg)?;
    let record = serde_json::to_vec(example).map_err(std::io::Error::other)?;
    write_atomic(&dir.join(format!("{}.json", example.id)), &record)
}

/// Remove example `id` (record first, so a half-removed example no longer counts); `false` if there is none.
pub fn remove_example(dir: &Path, id: &str) -> std::io::Result<bool> {
    let plain = !id.is_empty()
        && id.len() <= 128
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-'));
    if !plain {
        return Ok(false);
    }
    match std::fs::remove_file(dir.join(format!("{id}.json"))) {
        Ok(()) => {
            let _ = std::fs::remove_file(dir.join(format!("{id}.jpg")));
            Ok(true)
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(e),
    }
}

/// The crop as a JPEG (quality 90): what the example was made from.
pub(super) fn crop_jpeg(crop: &ImageView) -> Result<Vec<u8>, String> {
    let img =
        image::RgbImage::from_raw(crop.width() as u32, crop.height() as u32, crop.to_packed())
            .ok_or("the crop has no pixels")?;
    evidence::encode(&img, 90)
        .map(|e| e.jpeg)
        .map_err(|e| e.to_string())
}

/// A unique, plain id: state, time and a few hex digits of the vector.
fn new_id(state: &str, vector: &[f32], now: SystemTime) -> String {
    let ms = now
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default()
        .as_millis();
    let bytes: Vec<u8> = vector.iter().flat_map(|v| v.to_le_bytes()).collect();
    format!("{state}-{ms}-{}", &crate::base::sha256_hex(&bytes)[..6])
}

/// Keep a new example of `state` made by embedder `embedder`, then hold the state to `spec`'s cap.
pub(super) fn keep(
    spec: &ExampleSpec,
    state: &str,
    source: &str,
    (embedder, vector): (String, Vec<f32>),
    jpeg: &[u8],
) -> Result<StoredExample, ExampleError> {
    let now = SystemTime::now();
    let example = StoredExample {
        id: new_id(state, &vector, now),
        created: chrono::DateTime::<chrono::Utc>::from(now)
            .to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        state: state.to_string(),
        source: source.to_string(),
        embedder,
        vector,
    };
    store_example(&spec.dir, &example, jpeg)
        .map_err(|e| ExampleError::Failed(format!("the example could not be kept: {e}")))?;
    let mut of_state: Vec<StoredExample> = load_examples(&spec.dir)
        .into_iter()
        .filter(|e| e.state == state)
        .collect();
    while of_state.len() > spec.max_per_state {
        let Some(i) = redundant(&of_state) else { break };
        let _ = remove_example(&spec.dir, &of_state.remove(i).id);
    }
    Ok(example)
}

/// Which of `examples` (oldest first) goes when their state is over its cap: the older of the two most
/// alike. A nearest-example vote needs the variety of a state, not its many near-copies: a dispatcher's
/// handful of pictures of one scene then replaces its own kind, not the pavement in rain or at dusk, and a
/// new picture of a scene still replaces the old one most like it.
pub fn redundant(examples: &[StoredExample]) -> Option<usize> {
    let mut most: Option<(f32, usize)> = None;
    for (j, b) in examples.iter().enumerate() {
        for (i, a) in examples.iter().enumerate().take(j) {
            let alike = if a.vector.len() == b.vector.len() {
                dot(&a.vector, &b.vector)
            } else {
                // Made by different embedders (about to be embedded again): nothing to compare.
                f32::MIN
            };
            if most.is_none_or(|(m, _)| alike > m) {
                most = Some((alike, i));
            }
        }
    }
    most.map(|(_, i)| i)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn example(id: &str, vector: [f32; 2]) -> StoredExample {
        StoredExample {
            id: id.into(),
            state: "clear".into(),
            source: "label".into(),
            created: format!("2026-12-05T00:00:0{}Z", &id[1..]),
            embedder: "e".into(),
            vector: crate::base::unit(vector.to_vec()),
        }
    }

    #[test]
    fn over_the_cap_the_older_of_the_two_most_alike_goes() {
        let examples = [
            example("e1", [1.0, 0.0]),
            example("e2", [0.0, 1.0]),
            example("e3", [0.1, 1.0]),
            example("e4", [1.0, 1.0]),
        ];
        assert_eq!(redundant(&examples), Some(1), "e2 and e3 are near-copies");
        assert_eq!(redundant(&examples[..1]), None);
    }

    #[test]
    fn keep_holds_a_state_to_its_cap_and_keeps_its_variety() {
        let dir = tempfile::tempdir().unwrap();
        let spec = ExampleSpec {
            dir: dir.path().to_path_buf(),
            embedder: "e".into(),
            max_per_state: 3,
        };
        let jpeg = [0xff, 0xd8, 0xff, 0xd9];
        let add = |v: [f32; 2]| {
            keep(
                &spec,
                "clear",
                "label",
                ("e".into(), crate::base::unit(v.to_vec())),
                &jpeg,
            )
            .unwrap()
            .id
        };
        let dusk = add([1.0, 0.0]);
        let tarp1 = add([0.0, 1.0]);
        let _tarp2 = add([0.05, 1.0]);
        let tarp3 = add([0.02, 1.0]);
        let kept: Vec<String> = load_examples(dir.path())
            .into_iter()
            .map(|e| e.id)
            .collect();
        assert_eq!(kept.len(), 3, "{kept:?}");
        assert!(
            kept.contains(&dusk),
            "a picture unlike the rest stays: {kept:?}"
        );
        assert!(kept.contains(&tarp3), "the newest stays: {kept:?}");
        assert!(
            !kept.contains(&tarp1),
            "the older of the two most alike goes: {kept:?}"
        );
        assert!(
            !dir.path().join(format!("{tarp1}.jpg")).exists(),
            "its crop too"
        );
    }
}
