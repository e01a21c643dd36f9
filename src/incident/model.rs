//! What the analyser knows of the model its detections come from: name, version, hash, labels, and which
//! labels the manifest maps to each category.

/// What the analyser needs to know about the model it receives detections from.
#[derive(Debug, Clone)]
pub struct ModelInfo {
    pub name: String,
    pub version: String,
    pub sha256: String,
    pub labels: Vec<String>,
    /// Category → the labels the manifest maps to it, in class order.
    pub categories: std::collections::BTreeMap<String, Vec<String>>,
}

impl ModelInfo {
    /// What the analyser needs from a loaded model's manifest.
    pub fn new(manifest: &crate::detect::Manifest, sha256: &str) -> Self {
        let mut categories = std::collections::BTreeMap::new();
        for category in manifest.categories.values().flatten() {
            categories
                .entry(category.clone())
                .or_insert_with(|| manifest.labels_for(category));
        }
        ModelInfo {
            name: manifest.name.clone(),
            version: manifest.version.clone(),
            sha256: sha256.to_string(),
            labels: manifest.labels.clone(),
            categories,
        }
    }

    /// The labels the manifest maps to `category` (empty when none).
    pub fn labels_for(&self, category: &str) -> Vec<String> {
        self.categories.get(category).cloned().unwrap_or_default()
    }

    /// Class indices of `labels`; labels the model does not have are skipped (validation reports a rule
    /// none of whose labels exist).
    pub fn classes(&self, labels: &[String]) -> Vec<usize> {
        labels
            .iter()
            .filter_map(|l| self.labels.iter().position(|m| m == l))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::detect::Manifest;

    #[test]
    fn model_info_maps_each_category_to_its_labels_in_class_order() {
        let m: Manifest = toml::from_str(
            r#"name = "city"
version = "1"
task = "detect"
sha256 = "00"
license = "x"
source = "x"
labels = ["person", "umbrella", "stall", "bin"]
[input]
name = "images"
width = 640
height = 640
layout = "nchw"
dtype = "f32"
color = "rgb"
scale = 0.0039
resize = "letterbox"
[output]
head = "yolov8"
name = "output0"
[categories]
stall = ["street_vending"]
umbrella = ["street_vending"]
person = ["crowd_density"]
"#,
        )
        .unwrap();
        let info = ModelInfo::new(&m, "ab");
        assert_eq!(info.labels_for("street_vending"), vec!["umbrella", "stall"]);
        assert_eq!(info.classes(&info.labels_for("street_vending")), vec![1, 2]);
        assert_eq!(info.labels_for("crowd_density"), vec!["person"]);
        assert!(info.labels_for("bin_overflow").is_empty());
    }
}
