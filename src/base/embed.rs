//! A picture turned into a feature vector: what a zone-state rule asks of a frozen embedder. The rule sees
//! only this trait, so its logic is tested with a synthetic embedder and runs with an ONNX Runtime session
//! in the daemon; one session serves every camera of a worker behind the mutex.

use super::ImageView;
use std::sync::{Arc, Mutex};

/// Turns a picture into a feature vector.
pub trait Embed {
    /// The vector for `picture` (any size; the embedder fits it to its input).
    fn embed(&mut self, picture: &ImageView) -> Result<Vec<f32>, String>;
    /// What makes vectors comparable: vectors from embedders with different ids are not.
    fn id(&self) -> String;
}

/// An embedder shared by the cameras of one worker.
pub type SharedEmbedder = Arc<Mutex<dyn Embed + Send>>;

/// `v` scaled to unit length (cosine similarity becomes a dot product); a zero vector stays zero.
pub fn unit(mut v: Vec<f32>) -> Vec<f32> {
    let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    if norm > 0.0 && norm.is_finite() {
        v.iter_mut().for_each(|x| *x /= norm);
    }
    v
}

/// Dot product of two vectors of the same length (cosine similarity of unit vectors); 0 when they differ.
pub fn dot(a: &[f32], b: &[f32]) -> f32 {
    if a.len() != b.len() {
        return 0.0;
    }
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}
