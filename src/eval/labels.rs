//! Ground truth in the formats labelling tools export: COCO JSON, YOLO txt (one file per picture) and
//! CVAT XML (for video: tracks of boxes per frame; for images: boxes per image). Which picture a label
//! belongs to is a frame number for a clip (`frame_000123.png` as CVAT names a video's frames, or a CVAT
//! video track's `frame`) and a file name for a directory of pictures.

use anyhow::{Context, Result, bail};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// One labelled object.
#[derive(Debug, Clone, PartialEq)]
pub struct GtBox {
    pub class: String,
    /// x1, y1, x2, y2: pixels, or 0..1 of the picture when the set is `normalised`.
    pub bbox: [f64; 4],
    /// Crowd / barely visible / too small: a detection on it is neither right nor wrong.
    pub ignore: bool,
}

/// Which picture of the media a set of labels is for.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum FrameKey {
    /// The n-th decoded frame of a clip, 0-based.
    Index(u64),
    /// A picture file, relative to the media directory.
    File(PathBuf),
}

/// A labelled picture: every object on it is labelled (no box means nothing there).
#[derive(Debug, Clone, PartialEq)]
pub struct LabelledFrame {
    /// The labels' own id of the picture (COCO `image_id`), used for the detections in the report.
    pub id: u64,
    pub key: FrameKey,
    pub name: String,
    pub boxes: Vec<GtBox>,
}

/// All labels of a set.
#[derive(Debug, Clone, PartialEq)]
pub struct GroundTruth {
    pub format: &'static str,
    pub path: PathBuf,
    /// Boxes in 0..1 of the picture (YOLO) rather than pixels.
    pub normalised: bool,
    /// Class names with the labels' own ids (COCO `category_id`), in id order.
    pub classes: Vec<(u64, String)>,
    pub frames: Vec<LabelledFrame>,
}

impl GroundTruth {
    /// Read labels from `path`: a `.json` file (COCO), a `.xml` file (CVAT) or a directory of `.txt`
    /// files (YOLO, class names in `obj.names` or `classes.txt` next to them or one level up).
    pub fn load(path: &Path) -> Result<GroundTruth> {
        let ext = path
            .extension()
            .and_then(|e| e.to_str())
            .map(str::to_ascii_lowercase);
        let mut gt = if path.is_dir() {
            yolo(path)?
        } else {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("cannot read labels {}", path.display()))?;
            match ext.as_deref() {
                Some("json") => {
                    coco(&text).with_context(|| format!("{}: COCO JSON", path.display()))?
                }
                Some("xml") => {
                    cvat(&text).with_context(|| format!("{}: CVAT XML", path.display()))?
                }
                _ => bail!(
                    "{}: labels must be a COCO .json file, a CVAT .xml file or a directory of YOLO .txt files",
                    path.display()
                ),
            }
        };
        gt.path = path.to_path_buf();
        gt.frames.sort_by(|a, b| a.key.cmp(&b.key));
        if let Some(pair) = gt.frames.windows(2).find(|w| w[0].key == w[1].key) {
            bail!(
                "{}: the picture {} is labelled twice",
                path.display(),
                pair[1].name
            );
        }
        if gt.frames.is_empty() {
            bail!("{}: no labelled picture", path.display());
        }
        Ok(gt)
    }

    pub fn boxes(&self) -> usize {
        self.frames.iter().map(|f| f.boxes.len()).sum()
    }

    pub fn ignored(&self) -> usize {
        self.frames
            .iter()
            .flat_map(|f| &f.boxes)
            .filter(|b| b.ignore)
            .count()
    }

    /// The labels' id of a class name (for detections written in the labels' own terms).
    pub fn class_id(&self, name: &str) -> Option<u64> {
        self.classes
            .iter()
            .find(|(_, n)| n == name)
            .map(|(i, _)| *i)
    }

    /// Classes that have at least one labelled box, in id order.
    pub fn labelled_classes(&self) -> Vec<String> {
        self.classes
            .iter()
            .filter(|(_, n)| {
                self.frames
                    .iter()
                    .flat_map(|f| &f.boxes)
                    .any(|b| &b.class == n)
            })
            .map(|(_, n)| n.clone())
            .collect()
    }
}

/// A picture's key from its file name: `frame_000123.png` (or any name ending in digits) is frame 123 of a
/// clip; anything else is a file.
fn key_of(name: &str) -> FrameKey {
    let stem = Path::new(name)
        .file_stem()
        .and_then(|s| s.to_str())
        .unwrap_or(name);
    let digits: String = stem
        .chars()
        .rev()
        .take_while(char::is_ascii_digit)
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
        .collect();
    match (stem.starts_with("frame"), digits.parse()) {
        (true, Ok(n)) => FrameKey::Index(n),
        _ => FrameKey::File(PathBuf::from(name)),
    }
}

#[derive(Deserialize)]
struct CocoFile {
    images: Vec<CocoImage>,
    #[serde(default)]
    annotations: Vec<CocoAnnotation>,
    categories: Vec<CocoCategory>,
}

#[derive(Deserialize)]
struct CocoImage {
    id: u64,
    file_name: String,
}

#[derive(Deserialize)]
struct CocoAnnotation {
    image_id: u64,
    category_id: u64,
    bbox: [f64; 4],
    #[serde(default)]
    iscrowd: u8,
    #[serde(default)]
    ignore: Option<serde_json::Value>,
}

#[derive(Deserialize)]
struct CocoCategory {
    id: u64,
    name: String,
}

fn coco(text: &str) -> Result<GroundTruth> {
    let file: CocoFile = serde_json::from_str(text)?;
    let names: BTreeMap<u64, String> = file
        .categories
        .iter()
        .map(|c| (c.id, c.name.clone()))
        .collect();
    let mut frames: BTreeMap<u64, LabelledFrame> = file
        .images
        .iter()
        .map(|i| {
            (
                i.id,
                LabelledFrame {
                    id: i.id,
                    key: key_of(&i.file_name),
                    name: i.file_name.clone(),
                    boxes: Vec::new(),
                },
            )
        })
        .collect();
    for (n, a) in file.annotations.iter().enumerate() {
        let class = names.get(&a.category_id).with_context(|| {
            format!(
                "annotation {n}: category_id {} is not among the categories",
                a.category_id
            )
        })?;
        let frame = frames.get_mut(&a.image_id).with_context(|| {
            format!(
                "annotation {n}: image_id {} is not among the images",
                a.image_id
            )
        })?;
        let [x, y, w, h] = a.bbox;
        if !(w > 0.0 && h > 0.0 && x.is_finite() && y.is_finite()) {
            bail!(
                "annotation {n}: bbox {:?} is not [x, y, width, height] with a positive size",
                a.bbox
            );
        }
        let flagged =
            matches!(&a.ignore, Some(v) if v.as_bool() == Some(true) || v.as_u64() == Some(1));
        frame.boxes.push(GtBox {
            class: class.clone(),
            bbox: [x, y, x + w, y + h],
            ignore: a.iscrowd == 1 || flagged,
        });
    }
    Ok(GroundTruth {
        format: "coco",
        path: PathBuf::new(),
        normalised: false,
        classes: names.into_iter().collect(),
        frames: frames.into_values().collect(),
    })
}

fn yolo(dir: &Path) -> Result<GroundTruth> {
    let names_file = ["obj.names", "classes.txt"]
        .iter()
        .flat_map(|n| {
            [
                dir.join(n),
                dir.parent().map(|p| p.join(n)).unwrap_or_default(),
            ]
        })
        .find(|p| p.is_file())
        .with_context(|| {
            format!(
                "{}: YOLO labels need their class names in obj.names or classes.txt (one per line)",
                dir.display()
            )
        })?;
    let names: Vec<String> = std::fs::read_to_string(&names_file)?
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(String::from)
        .collect();
    let mut frames = Vec::new();
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.extension().is_some_and(|e| e == "txt")
                && p.file_name() != Some("classes.txt".as_ref())
        })
        .collect();
    files.sort();
    for (id, file) in files.iter().enumerate() {
        let stem = file
            .file_stem()
            .and_then(|s| s.to_str())
            .unwrap_or_default();
        let mut boxes = Vec::new();
        for (line_no, line) in std::fs::read_to_string(file)?.lines().enumerate() {
            let fields: Vec<&str> = line.split_whitespace().collect();
            if fields.is_empty() {
                continue;
            }
            let at = || format!("{}:{}", file.display(), line_no + 1);
            let parsed: Option<Vec<f64>> = fields.iter().map(|f| f.parse().ok()).collect();
            let (Some(v), 5) = (parsed, fields.len()) else {
                bail!(
                    "{}: expected `class cx cy w h` (numbers, 0..1 of the picture)",
                    at()
                );
            };
            let class = names
                .get(v[0] as usize)
                .filter(|_| v[0].fract() == 0.0 && v[0] >= 0.0);
            let Some(class) = class else {
                bail!(
                    "{}: class {} is not in {} ({} names)",
                    at(),
                    fields[0],
                    names_file.display(),
                    names.len()
                );
            };
            let (cx, cy, w, h) = (v[1], v[2], v[3], v[4]);
            if !(w > 0.0 && h > 0.0 && (0.0..=1.0).contains(&cx) && (0.0..=1.0).contains(&cy)) {
                bail!(
                    "{}: box {cx} {cy} {w} {h} is not centre and size in 0..1 of the picture",
                    at()
                );
            }
            boxes.push(GtBox {
                class: class.clone(),
                bbox: [cx - w / 2.0, cy - h / 2.0, cx + w / 2.0, cy + h / 2.0],
                ignore: false,
            });
        }
        frames.push(LabelledFrame {
            id: id as u64,
            key: key_of(stem),
            name: stem.to_string(),
            boxes,
        });
    }
    Ok(GroundTruth {
        format: "yolo",
        path: PathBuf::new(),
        normalised: true,
        classes: names
            .into_iter()
            .enumerate()
            .map(|(i, n)| (i as u64, n))
            .collect(),
        frames,
    })
}

fn cvat(text: &str) -> Result<GroundTruth> {
    let doc = roxmltree::Document::parse(text)?;
    let root = doc.root_element();
    let num = |n: roxmltree::Node, a: &str| -> Result<f64> {
        n.attribute(a)
            .and_then(|v| v.parse().ok())
            .with_context(|| {
                format!(
                    "line {}: <{}> needs a numeric `{a}`",
                    doc.text_pos_at(n.range().start).row,
                    n.tag_name().name()
                )
            })
    };
    let bbox = |b: roxmltree::Node| -> Result<GtBox> {
        let ignore = b.children().any(|a| {
            a.has_tag_name("attribute")
                && a.attribute("name") == Some("ignore")
                && matches!(a.text().map(str::trim), Some("true" | "1"))
        });
        Ok(GtBox {
            class: String::new(),
            bbox: [
                num(b, "xtl")?,
                num(b, "ytl")?,
                num(b, "xbr")?,
                num(b, "ybr")?,
            ],
            ignore,
        })
    };
    let mut classes: Vec<String> = root
        .descendants()
        .filter(|n| n.has_tag_name("label"))
        .filter_map(|l| {
            l.children()
                .find(|c| c.has_tag_name("name"))
                .and_then(|n| n.text())
        })
        .map(String::from)
        .collect();
    let mut frames: BTreeMap<FrameKey, LabelledFrame> = BTreeMap::new();
    let images: Vec<_> = root
        .children()
        .filter(|n| n.has_tag_name("image"))
        .collect();
    if images.is_empty() {
        // CVAT for video: every frame of the task is labelled; tracks say where each object is.
        let task = root.descendants().find(|n| n.has_tag_name("task"));
        let field = |name: &str| -> Option<u64> {
            task?
                .children()
                .find(|c| c.has_tag_name(name))?
                .text()?
                .trim()
                .parse()
                .ok()
        };
        let (start, stop) = match (field("start_frame"), field("stop_frame"), field("size")) {
            (Some(a), Some(b), _) => (a, b),
            (_, _, Some(size)) if size > 0 => (0, size - 1),
            _ => bail!("CVAT for video needs <meta><task><size> (or start_frame/stop_frame)"),
        };
        for n in start..=stop {
            frames.insert(
                FrameKey::Index(n),
                LabelledFrame {
                    id: n,
                    key: FrameKey::Index(n),
                    name: format!("frame_{n:06}"),
                    boxes: Vec::new(),
                },
            );
        }
        for track in root.children().filter(|n| n.has_tag_name("track")) {
            let label = track.attribute("label").unwrap_or_default().to_string();
            for b in track.children().filter(|n| n.has_tag_name("box")) {
                if b.attribute("outside") == Some("1") {
                    continue;
                }
                let n = num(b, "frame")? as u64;
                let Some(frame) = frames.get_mut(&FrameKey::Index(n)) else {
                    bail!(
                        "track {}: frame {n} is outside the task's frames {start}..={stop}",
                        track.attribute("id").unwrap_or("?")
                    );
                };
                frame.boxes.push(GtBox {
                    class: label.clone(),
                    ..bbox(b)?
                });
            }
        }
    }
    for image in images {
        let name = image.attribute("name").unwrap_or_default().to_string();
        let id = num(image, "id")? as u64;
        let boxes = image
            .children()
            .filter(|n| n.has_tag_name("box"))
            .map(|b| {
                Ok(GtBox {
                    class: b.attribute("label").unwrap_or_default().to_string(),
                    ..bbox(b)?
                })
            })
            .collect::<Result<Vec<_>>>()?;
        let key = key_of(&name);
        frames.insert(
            key.clone(),
            LabelledFrame {
                id,
                key,
                name,
                boxes,
            },
        );
    }
    for b in frames.values().flat_map(|f| &f.boxes) {
        if !classes.contains(&b.class) {
            classes.push(b.class.clone());
        }
    }
    Ok(GroundTruth {
        format: "cvat",
        path: PathBuf::new(),
        normalised: false,
        classes: classes
            .into_iter()
            .enumerate()
            .map(|(i, n)| (i as u64 + 1, n))
            .collect(),
        frames: frames.into_values().collect(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn coco_boxes_become_corners_and_crowds_are_ignored() {
        let gt = coco(
            r#"{"images":[{"id":7,"file_name":"frame_000045.png","width":768,"height":576},
                          {"id":8,"file_name":"street/a.jpg","width":10,"height":10}],
                "annotations":[{"image_id":7,"category_id":1,"bbox":[10,20,30,40],"iscrowd":0},
                               {"image_id":7,"category_id":1,"bbox":[1,2,3,4],"iscrowd":1}],
                "categories":[{"id":1,"name":"person"}]}"#,
        )
        .unwrap();
        assert_eq!(gt.frames[0].key, FrameKey::Index(45));
        assert_eq!(gt.frames[0].boxes[0].bbox, [10.0, 20.0, 40.0, 60.0]);
        assert!(gt.frames[0].boxes[1].ignore && !gt.frames[0].boxes[0].ignore);
        assert_eq!(gt.frames[1].key, FrameKey::File("street/a.jpg".into()));
        assert!(
            gt.frames[1].boxes.is_empty(),
            "a labelled picture with nothing on it"
        );
        let e = coco(r#"{"images":[{"id":1,"file_name":"a.jpg"}],"annotations":[{"image_id":1,"category_id":9,"bbox":[0,0,1,1]}],"categories":[]}"#)
            .unwrap_err();
        assert!(format!("{e:#}").contains("category_id 9"), "{e:#}");
    }

    #[test]
    fn yolo_lines_are_checked_and_named() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("obj.names"), "person\ncar\n").unwrap();
        std::fs::write(
            dir.path().join("frame_000003.txt"),
            "0 0.5 0.5 0.2 0.4\n1 0.1 0.1 0.1 0.1\n",
        )
        .unwrap();
        std::fs::write(dir.path().join("frame_000004.txt"), "").unwrap();
        let gt = GroundTruth::load(dir.path()).unwrap();
        assert!(gt.normalised);
        assert_eq!(gt.frames.len(), 2);
        assert_eq!(gt.frames[0].boxes[0].class, "person");
        let b = gt.frames[0].boxes[0].bbox;
        assert!((b[0] - 0.4).abs() < 1e-9 && (b[3] - 0.7).abs() < 1e-9);
        std::fs::write(dir.path().join("frame_000005.txt"), "2 0.5 0.5 0.2 0.4\n").unwrap();
        let e = GroundTruth::load(dir.path()).unwrap_err();
        assert!(
            format!("{e:#}").contains("frame_000005.txt:1: class 2"),
            "{e:#}"
        );
    }

    #[test]
    fn cvat_video_tracks_label_every_frame_of_the_task() {
        let gt = cvat(
            r#"<annotations><meta><task><size>3</size><labels><label><name>person</name></label></labels></task></meta>
               <track id="0" label="person"><box frame="0" outside="0" xtl="1" ytl="2" xbr="11" ybr="22"/>
               <box frame="1" outside="1" xtl="1" ytl="2" xbr="11" ybr="22"/></track></annotations>"#,
        )
        .unwrap();
        assert_eq!(gt.frames.len(), 3);
        assert_eq!(gt.frames[0].boxes.len(), 1);
        assert!(gt.frames[1].boxes.is_empty() && gt.frames[2].boxes.is_empty());
        assert_eq!(gt.classes, vec![(1, "person".to_string())]);
    }
}
