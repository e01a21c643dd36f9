//! Frame → input tensor: resize, channel order and normalisation in one pass, into a reused buffer.
//!
//! The resize is bilinear with the per-column source offsets and weights computed once per frame size, so a
//! frame costs one read of the needed source pixels and one write of the tensor, no per-frame allocation.

use super::manifest::{ColorOrder, InputSpec, Layout};

/// A borrowed packed RGB image whose rows may be padded (`stride` ≥ `width × 3`).
#[derive(Debug, Clone, Copy)]
pub struct ImageView<'a> {
    pub width: usize,
    pub height: usize,
    pub stride: usize,
    pub data: &'a [u8],
}

/// Precomputed sampling tables for one source size.
#[derive(Debug, Default)]
struct Tables {
    src: (usize, usize),
    x0: Vec<usize>,
    x1: Vec<usize>,
    wx: Vec<f32>,
}

/// Turns RGB frames into the model's input tensor.
#[derive(Debug)]
pub struct Preprocessor {
    spec: InputSpec,
    /// `scale[c] = 1/std[c]`, `bias[c] = -mean[c]/std[c]`, indexed by *source* RGB channel.
    scale: [f32; 3],
    bias: [f32; 3],
    /// Tensor channel index of source R, G, B.
    dest_channel: [usize; 3],
    tables: Tables,
    tensor: Vec<f32>,
}

impl Preprocessor {
    pub fn new(spec: &InputSpec) -> Self {
        let dest_channel = match spec.color {
            ColorOrder::Rgb => [0, 1, 2],
            ColorOrder::Bgr => [2, 1, 0],
        };
        let mut scale = [0.0; 3];
        let mut bias = [0.0; 3];
        for src in 0..3 {
            let c = dest_channel[src];
            scale[src] = 1.0 / spec.std[c];
            bias[src] = -spec.mean[c] / spec.std[c];
        }
        Self {
            spec: spec.clone(),
            scale,
            bias,
            dest_channel,
            tables: Tables::default(),
            tensor: vec![0.0; 3 * spec.width * spec.height],
        }
    }

    /// Fill the tensor from `img` and return it (shape `[1, 3, H, W]` or `[1, H, W, 3]` per the manifest).
    pub fn run(&mut self, img: &ImageView) -> &[f32] {
        assert!(
            img.stride >= img.width * 3
                && img.data.len() >= img.stride * (img.height - 1) + img.width * 3,
            "image buffer smaller than its stride says"
        );
        let (w, h) = (self.spec.width, self.spec.height);
        self.prepare_tables(img.width, img.height);
        let plane = w * h;
        let ys = img.height as f32 / h as f32;
        for dy in 0..h {
            let sy = ((dy as f32 + 0.5) * ys - 0.5).clamp(0.0, (img.height - 1) as f32);
            let y0 = sy as usize;
            let y1 = (y0 + 1).min(img.height - 1);
            let wy = sy - y0 as f32;
            let row0 = &img.data[y0 * img.stride..];
            let row1 = &img.data[y1 * img.stride..];
            for dx in 0..w {
                let (x0, x1, wx) = (self.tables.x0[dx], self.tables.x1[dx], self.tables.wx[dx]);
                for c in 0..3 {
                    let top =
                        row0[x0 + c] as f32 + (row0[x1 + c] as f32 - row0[x0 + c] as f32) * wx;
                    let bottom =
                        row1[x0 + c] as f32 + (row1[x1 + c] as f32 - row1[x0 + c] as f32) * wx;
                    let v = (top + (bottom - top) * wy) * self.scale[c] + self.bias[c];
                    let idx = match self.spec.layout {
                        Layout::Nchw => self.dest_channel[c] * plane + dy * w + dx,
                        Layout::Nhwc => (dy * w + dx) * 3 + self.dest_channel[c],
                    };
                    self.tensor[idx] = v;
                }
            }
        }
        &self.tensor
    }

    pub fn shape(&self) -> [usize; 4] {
        match self.spec.layout {
            Layout::Nchw => [1, 3, self.spec.height, self.spec.width],
            Layout::Nhwc => [1, self.spec.height, self.spec.width, 3],
        }
    }

    fn prepare_tables(&mut self, sw: usize, sh: usize) {
        if self.tables.src == (sw, sh) {
            return;
        }
        let w = self.spec.width;
        let xs = sw as f32 / w as f32;
        let t = &mut self.tables;
        t.src = (sw, sh);
        t.x0.clear();
        t.x1.clear();
        t.wx.clear();
        for dx in 0..w {
            let sx = ((dx as f32 + 0.5) * xs - 0.5).clamp(0.0, (sw - 1) as f32);
            let x0 = sx as usize;
            t.x0.push(x0 * 3);
            t.x1.push((x0 + 1).min(sw - 1) * 3);
            t.wx.push(sx - x0 as f32);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::detect::manifest::ResizeMode;

    fn spec(color: ColorOrder, layout: Layout) -> InputSpec {
        InputSpec {
            name: "x".into(),
            width: 4,
            height: 2,
            layout,
            dtype: "f32".into(),
            color,
            mean: [10.0, 20.0, 30.0],
            std: [2.0, 4.0, 5.0],
            resize: ResizeMode::Stretch,
        }
    }

    #[test]
    fn uniform_image_normalises_each_channel_in_model_order() {
        // A padded 8×4 RGB image of (R=100, G=50, B=30); stride has 5 bytes of padding.
        let (w, h, stride) = (8, 4, 8 * 3 + 5);
        let mut data = vec![0u8; stride * h];
        for y in 0..h {
            for x in 0..w {
                data[y * stride + x * 3..][..3].copy_from_slice(&[100, 50, 30]);
            }
        }
        let img = ImageView {
            width: w,
            height: h,
            stride,
            data: &data,
        };
        let mut p = Preprocessor::new(&spec(ColorOrder::Bgr, Layout::Nchw));
        let t = p.run(&img).to_vec();
        // BGR model: channel 0 is blue = 30 → (30-10)/2 = 10; channel 1 green (50-20)/4 = 7.5; channel 2 red (100-30)/5 = 14.
        assert!(t[..8].iter().all(|v| (*v - 10.0).abs() < 1e-4), "{t:?}");
        assert!(t[8..16].iter().all(|v| (*v - 7.5).abs() < 1e-4));
        assert!(t[16..].iter().all(|v| (*v - 14.0).abs() < 1e-4));
    }

    #[test]
    fn nhwc_interleaves_channels() {
        let data = vec![90u8; 4 * 2 * 3];
        let img = ImageView {
            width: 4,
            height: 2,
            stride: 12,
            data: &data,
        };
        let mut p = Preprocessor::new(&spec(ColorOrder::Rgb, Layout::Nhwc));
        let t = p.run(&img);
        assert_eq!(&t[..3], &[40.0, 17.5, 12.0]);
    }
}
