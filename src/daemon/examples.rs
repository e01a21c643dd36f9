//! What a model worker does for its cameras' zone-state rules: one embedder session per embedder for the
//! whole worker, handed to every rule that names it with its examples; and an event's evidence picture made
//! an example, its passers-by found by the worker's own model so they are masked as the rule masks them.

use super::worker::ModelWorker;

impl ModelWorker {
    /// Give every zone-state rule its embedder session (one per embedder for the whole worker) and its
    /// examples. A bundle that does not load leaves its rules judging nothing, said once here.
    pub(super) fn equip(&mut self) {
        let running = self.running.lock().expect("running config lock").clone();
        for (id, (analyser, _)) in self.analysers.iter_mut() {
            for name in analyser.wanted_embedders() {
                if !self.embedders.contains_key(&name) {
                    match crate::plan::load_model(&running, &name) {
                        Ok(d) => {
                            tracing::info!(model = %self.model, worker = self.index, embedder = %name, "Embedder loaded for zone-state rules.");
                            self.embedders.insert(
                                name.clone(),
                                std::sync::Arc::new(std::sync::Mutex::new(d)),
                            );
                        }
                        Err(error) => {
                            tracing::error!(camera = %id, embedder = %name, %error, "Embedder not loaded; the camera's zone-state rules judge nothing.");
                            continue;
                        }
                    }
                }
                analyser.equip(&name, &self.embedders[&name]);
            }
        }
    }

    /// `picture` (an event's evidence) as an example of zone `zone`, its people masked as the rule masks
    /// them: the worker's own model finds them.
    pub(super) fn example_from(
        &mut self,
        camera: &str,
        zone: &str,
        wanted: crate::incident::Wanted,
        source: &str,
        picture: &image::RgbImage,
    ) -> Result<serde_json::Value, crate::incident::ExampleError> {
        let failed = |e: String| crate::incident::ExampleError::Failed(e);
        let (w, h) = (picture.width() as usize, picture.height() as usize);
        let view = crate::base::ImageView::packed(w, h, picture.as_raw())
            .map_err(|e| failed(e.to_string()))?;
        let detections = self
            .detector
            .detect(view)
            .map_err(|e| failed(e.to_string()))?;
        let (analyser, _) = self.analysers.get_mut(camera).ok_or_else(|| {
            crate::incident::ExampleError::NotFound(format!(
                "camera `{camera}` is not analysed by this worker"
            ))
        })?;
        analyser
            .add_example(zone, wanted, source, &view, (&detections, false))
            .map(|e| serde_json::json!({ "zone": zone, "example": e }))
    }
}
