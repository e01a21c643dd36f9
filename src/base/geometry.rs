//! Boxes and detections in normalised image coordinates: the vocabulary every stage after detect speaks.

use serde::Serialize;

/// An axis-aligned box in normalised image coordinates (0..1, origin top-left).
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct BBox {
    pub x1: f32,
    pub y1: f32,
    pub x2: f32,
    pub y2: f32,
}

impl BBox {
    pub fn area(&self) -> f32 {
        (self.x2 - self.x1).max(0.0) * (self.y2 - self.y1).max(0.0)
    }

    /// Intersection over union; 0 for disjoint or empty boxes.
    pub fn iou(&self, o: &BBox) -> f32 {
        let w = (self.x2.min(o.x2) - self.x1.max(o.x1)).max(0.0);
        let h = (self.y2.min(o.y2) - self.y1.max(o.y1)).max(0.0);
        let inter = w * h;
        let union = self.area() + o.area() - inter;
        if union > 0.0 { inter / union } else { 0.0 }
    }

    /// The bottom-centre point: where a standing person touches the ground.
    pub fn bottom_centre(&self) -> (f32, f32) {
        ((self.x1 + self.x2) / 2.0, self.y2)
    }

    /// Clamp into the unit square.
    pub fn clamped(self) -> BBox {
        let c = |v: f32| v.clamp(0.0, 1.0);
        BBox {
            x1: c(self.x1),
            y1: c(self.y1),
            x2: c(self.x2),
            y2: c(self.y2),
        }
    }
}

/// One detected object.
#[derive(Debug, Clone, PartialEq)]
pub struct Detection {
    /// Index into the model's labels.
    pub class: usize,
    pub score: f32,
    pub bbox: BBox,
}
