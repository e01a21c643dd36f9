//! Density-map head: a `[1, 1, H, W]` map whose sum is the number of people. The map is kept (not only its
//! sum) so that a crowd zone can sum the cells that lie inside its polygon.

use super::preprocess::Fit;

/// One frame's density map, with the geometry that places its cells on the frame.
#[derive(Debug, Clone, PartialEq)]
pub struct DensityMap {
    pub width: usize,
    pub height: usize,
    /// Row-major, `width × height`.
    pub values: Vec<f32>,
    /// Where the frame lay in the model's input (letterbox padding holds no one).
    pub fit: Fit,
}

impl DensityMap {
    /// The whole map's count.
    pub fn total(&self) -> f64 {
        self.values.iter().map(|&v| v as f64).sum()
    }

    /// Sum of the cells whose centre, in normalised frame coordinates, satisfies `inside`. Cells whose
    /// centre falls in the letterbox padding are never inside.
    pub fn sum_where(&self, inside: impl Fn(f32, f32) -> bool) -> f64 {
        let mut sum = 0.0;
        for y in 0..self.height {
            let v = (y as f32 + 0.5) / self.height as f32;
            for x in 0..self.width {
                let u = (x as f32 + 0.5) / self.width as f32;
                let (fx, fy) = self.fit.to_source_normalised(u, v);
                if (0.0..=1.0).contains(&fx) && (0.0..=1.0).contains(&fy) && inside(fx, fy) {
                    sum += self.values[y * self.width + x] as f64;
                }
            }
        }
        sum
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::detect::manifest::ResizeMode;

    fn map(fit: Fit) -> DensityMap {
        // 4×2 map, one person's worth in each quarter of the left half, 0.5 in the right half.
        DensityMap {
            width: 4,
            height: 2,
            values: vec![1.0, 1.0, 0.25, 0.25, 1.0, 1.0, 0.0, 0.0],
            fit,
        }
    }

    #[test]
    fn a_zone_sums_only_the_cells_whose_centre_it_holds() {
        let m = map(Fit::new(ResizeMode::Stretch, (100, 50), (8, 4)));
        assert_eq!(m.total(), 4.5);
        assert_eq!(m.sum_where(|x, _| x < 0.5), 4.0);
        assert_eq!(m.sum_where(|_, y| y > 0.5), 2.0);
    }

    #[test]
    fn cells_in_the_letterbox_padding_count_for_no_zone() {
        // A tall frame letterboxed into a square input: the map's outer columns are padding.
        let fit = Fit::new(ResizeMode::Letterbox, (50, 100), (8, 8));
        assert_eq!((fit.x, fit.w), (2, 4));
        let m = map(fit);
        assert_eq!(
            m.sum_where(|_, _| true),
            2.25,
            "only the two middle columns"
        );
    }
}
