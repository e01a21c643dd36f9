//! Zone geometry in normalised image coordinates.

/// A simple polygon (at least 3 vertices), normalised 0..1.
#[derive(Debug, Clone, PartialEq)]
pub struct Polygon {
    pub points: Vec<(f32, f32)>,
}

impl Polygon {
    pub fn new(points: &[[f64; 2]]) -> Self {
        Self {
            points: points.iter().map(|p| (p[0] as f32, p[1] as f32)).collect(),
        }
    }

    /// Even-odd ray casting; points on the boundary may fall either way.
    pub fn contains(&self, x: f32, y: f32) -> bool {
        let mut inside = false;
        let n = self.points.len();
        for i in 0..n {
            let (xi, yi) = self.points[i];
            let (xj, yj) = self.points[(i + n - 1) % n];
            if (yi > y) != (yj > y) && x < (xj - xi) * (y - yi) / (yj - yi) + xi {
                inside = !inside;
            }
        }
        inside
    }

    /// The smallest box holding every vertex.
    pub fn bounds(&self) -> crate::base::BBox {
        let fold = |f: fn(f32, f32) -> f32, init: f32, pick: fn(&(f32, f32)) -> f32| {
            self.points.iter().map(pick).fold(init, f)
        };
        crate::base::BBox {
            x1: fold(f32::min, f32::INFINITY, |p| p.0),
            y1: fold(f32::min, f32::INFINITY, |p| p.1),
            x2: fold(f32::max, f32::NEG_INFINITY, |p| p.0),
            y2: fold(f32::max, f32::NEG_INFINITY, |p| p.1),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn square() -> Polygon {
        Polygon::new(&[[0.2, 0.2], [0.8, 0.2], [0.8, 0.8], [0.2, 0.8]])
    }

    #[test]
    fn points_inside_and_outside_a_square() {
        assert!(square().contains(0.5, 0.5));
        assert!(!square().contains(0.1, 0.5));
        assert!(!square().contains(0.5, 0.9));
    }

    #[test]
    fn concave_notch_is_outside() {
        // A "U": the notch between the arms is outside.
        let u = Polygon::new(&[
            [0.0, 0.0],
            [0.3, 0.0],
            [0.3, 0.6],
            [0.7, 0.6],
            [0.7, 0.0],
            [1.0, 0.0],
            [1.0, 1.0],
            [0.0, 1.0],
        ]);
        assert!(!u.contains(0.5, 0.3));
        assert!(u.contains(0.15, 0.3));
        assert!(u.contains(0.5, 0.8));
    }

    proptest! {
        #[test]
        fn rectangle_membership_matches_bounds(x0 in 0.0f32..0.5, y0 in 0.0f32..0.5, w in 0.01f32..0.5, h in 0.01f32..0.5, px in 0.0f32..1.0, py in 0.0f32..1.0) {
            let p = Polygon { points: vec![(x0, y0), (x0 + w, y0), (x0 + w, y0 + h), (x0, y0 + h)] };
            let strictly_inside = px > x0 + 1e-4 && px < x0 + w - 1e-4 && py > y0 + 1e-4 && py < y0 + h - 1e-4;
            let strictly_outside = px < x0 - 1e-4 || px > x0 + w + 1e-4 || py < y0 - 1e-4 || py > y0 + h + 1e-4;
            if strictly_inside { prop_assert!(p.contains(px, py)); }
            if strictly_outside { prop_assert!(!p.contains(px, py)); }
        }
    }
}
