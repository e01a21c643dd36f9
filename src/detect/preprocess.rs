//! Frame → input tensor: resize (stretch or letterbox), channel order and normalisation in one pass, into a
//! reused buffer; and [`Fit`], the geometry that maps the model's boxes back onto the frame.
//!
//! The resize is bilinear with the per-column source offsets and weights computed once per frame size, so a
//! frame costs one read of the needed source pixels and one write of the tensor, no per-frame allocation.
//! Letterbox padding is written only when the geometry changes: the content area is all a frame rewrites.
//!
//! A decoder's 4:2:0 picture is read as it is: luma and chroma are each interpolated at the input pixel
//! and converted to RGB there, so only the model's input pixels are ever converted (a 1080p frame into a
//! 416-px model converts 5 % of its pixels) and no full-size RGB copy of the frame is made.

use super::manifest::{ColorOrder, InputSpec, Layout, ResizeMode};
use crate::base::{BBox, FrameView, ImageView, YuvView};

/// Where a source frame lies in the model's input: the content rectangle `(x, y, w, h)` in input pixels.
/// Stretch fills the whole input; letterbox keeps the aspect ratio and centres the frame.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Fit {
    pub source: (usize, usize),
    pub input: (usize, usize),
    pub x: usize,
    pub y: usize,
    pub w: usize,
    pub h: usize,
}

impl Fit {
    pub fn new(mode: ResizeMode, source: (usize, usize), input: (usize, usize)) -> Fit {
        let (sw, sh) = (source.0.max(1), source.1.max(1));
        let (iw, ih) = input;
        match mode {
            ResizeMode::Stretch => Fit {
                source,
                input,
                x: 0,
                y: 0,
                w: iw,
                h: ih,
            },
            ResizeMode::Letterbox => {
                let r = (iw as f64 / sw as f64).min(ih as f64 / sh as f64);
                let w = ((sw as f64 * r).round() as usize).clamp(1, iw);
                let h = ((sh as f64 * r).round() as usize).clamp(1, ih);
                Fit {
                    source,
                    input,
                    x: (iw - w) / 2,
                    y: (ih - h) / 2,
                    w,
                    h,
                }
            }
        }
    }

    /// A point in source pixels → input pixels.
    pub fn to_input(&self, x: f32, y: f32) -> (f32, f32) {
        (
            self.x as f32 + x * self.w as f32 / self.source.0 as f32,
            self.y as f32 + y * self.h as f32 / self.source.1 as f32,
        )
    }

    /// A point normalised to the input (0..1 of the tensor) → normalised to the source frame. Points in
    /// the letterbox padding land outside 0..1.
    pub fn to_source_normalised(&self, u: f32, v: f32) -> (f32, f32) {
        (
            (u * self.input.0 as f32 - self.x as f32) / self.w as f32,
            (v * self.input.1 as f32 - self.y as f32) / self.h as f32,
        )
    }

    /// A box normalised to the input → normalised to the source, clamped to the frame.
    pub fn unmap(&self, b: BBox) -> BBox {
        let (x1, y1) = self.to_source_normalised(b.x1, b.y1);
        let (x2, y2) = self.to_source_normalised(b.x2, b.y2);
        BBox { x1, y1, x2, y2 }.clamped()
    }

    fn is_identity(&self) -> bool {
        self.x == 0 && self.y == 0 && (self.w, self.h) == self.input
    }
}

/// Precomputed sampling tables for one geometry.
#[derive(Debug, Default)]
struct Tables {
    fit: Option<Fit>,
    x0: Vec<usize>,
    x1: Vec<usize>,
    wx: Vec<f32>,
    /// For 4:2:0 pictures: the geometry and chroma sample step these were made for, luma columns, and
    /// chroma byte columns (the step applied) with their weights.
    yuv: Option<(Fit, usize)>,
    lx0: Vec<usize>,
    lx1: Vec<usize>,
    cx0: Vec<usize>,
    cx1: Vec<usize>,
    cwx: Vec<f32>,
}

/// Source position of output sample `d` of `n` over `size` source samples (pixel centres aligned),
/// as the two neighbours and the weight of the second.
fn taps(d: usize, scale: f32, size: usize) -> (usize, usize, f32) {
    let s = ((d as f32 + 0.5) * scale - 0.5).clamp(0.0, (size - 1) as f32);
    let i = s as usize;
    (i, (i + 1).min(size - 1), s - i as f32)
}

/// The chroma sample under luma position `s` of a plane half the luma's size (centres aligned).
fn chroma_taps(s: f32, size: usize) -> (usize, usize, f32) {
    let c = ((s + 0.5) / 2.0 - 0.5).clamp(0.0, (size - 1) as f32);
    let i = c as usize;
    (i, (i + 1).min(size - 1), c - i as f32)
}

#[inline]
fn bilinear(a: u8, b: u8, d: u8, e: u8, wx: f32, wy: f32) -> f32 {
    let (a, b, d, e) = (a as f32, b as f32, d as f32, e as f32);
    let top = a + (b - a) * wx;
    let bottom = d + (e - d) * wx;
    top + (bottom - top) * wy
}

/// Turns RGB frames into the model's input tensor.
#[derive(Debug)]
pub struct Preprocessor {
    spec: InputSpec,
    /// `scale[c]`, `bias[c]` indexed by *source* RGB channel: value = pixel × scale + bias.
    scale: [f32; 3],
    bias: [f32; 3],
    /// Offset of source channel R, G, B within a pixel's tensor index (see `pixel_step`).
    channel_offset: [usize; 3],
    /// Tensor index of pixel `p` (row-major over the input) is `p × pixel_step + channel_offset[c]`.
    pixel_step: usize,
    tables: Tables,
    tensor: Vec<f32>,
}

impl Preprocessor {
    pub fn new(spec: &InputSpec) -> Self {
        let dest_channel = match spec.color {
            ColorOrder::Rgb => [0, 1, 2],
            ColorOrder::Bgr => [2, 1, 0],
        };
        let (mul, add) = spec.normalisation();
        let plane = spec.width * spec.height;
        let (mut scale, mut bias, mut channel_offset) = ([0.0; 3], [0.0; 3], [0; 3]);
        for src in 0..3 {
            let c = dest_channel[src];
            scale[src] = mul[c];
            bias[src] = add[c];
            channel_offset[src] = match spec.layout {
                Layout::Nchw => c * plane,
                Layout::Nhwc => c,
            };
        }
        Self {
            spec: spec.clone(),
            scale,
            bias,
            channel_offset,
            pixel_step: match spec.layout {
                Layout::Nchw => 1,
                Layout::Nhwc => 3,
            },
            tables: Tables::default(),
            tensor: vec![0.0; 3 * plane],
        }
    }

    /// Fill the tensor from `picture` and return it (shape `[1, 3, H, W]` or `[1, H, W, 3]` per the
    /// manifest). [`Preprocessor::fit`] then says where the frame went.
    pub fn run<'a>(&mut self, picture: impl Into<FrameView<'a>>) -> &[f32] {
        match picture.into() {
            FrameView::Rgb(img) => self.run_rgb(&img),
            FrameView::Yuv(yuv) => self.run_yuv(&yuv),
        }
    }

    fn run_rgb(&mut self, img: &ImageView) -> &[f32] {
        // The view's constructor guarantees its rows are inside its bytes.
        let fit = self.fit_for(img);
        self.prepare(fit);
        let w = self.spec.width;
        let ys = img.height() as f32 / fit.h as f32;
        if self.spec.layout == Layout::Nchw {
            self.run_nchw(img, fit, ys);
            return &self.tensor;
        }
        let (step, off) = (self.pixel_step, self.channel_offset);
        for dy in 0..fit.h {
            let sy = ((dy as f32 + 0.5) * ys - 0.5).clamp(0.0, (img.height() - 1) as f32);
            let y0 = sy as usize;
            let y1 = (y0 + 1).min(img.height() - 1);
            let wy = sy - y0 as f32;
            let row0 = img.row(y0);
            let row1 = img.row(y1);
            let first = (fit.y + dy) * w + fit.x;
            for dx in 0..fit.w {
                let (x0, x1, wx) = (self.tables.x0[dx], self.tables.x1[dx], self.tables.wx[dx]);
                let base = (first + dx) * step;
                for c in 0..3 {
                    let (a, b) = (row0[x0 + c] as f32, row0[x1 + c] as f32);
                    let (d, e) = (row1[x0 + c] as f32, row1[x1 + c] as f32);
                    let top = a + (b - a) * wx;
                    let bottom = d + (e - d) * wx;
                    self.tensor[base + off[c]] =
                        (top + (bottom - top) * wy) * self.scale[c] + self.bias[c];
                }
            }
        }
        &self.tensor
    }

    /// The NCHW case with the three output rows as slices walked in step with the column tables, so the
    /// inner loop has no index arithmetic into the tensor (measured: see docs/benchmarks.md).
    fn run_nchw(&mut self, img: &ImageView, fit: Fit, ys: f32) {
        let (w, plane) = (self.spec.width, self.spec.width * self.spec.height);
        let (p0, rest) = self.tensor.split_at_mut(plane);
        let (p1, p2) = rest.split_at_mut(plane);
        // Tensor plane → the source channel it takes, and that channel's factors.
        let mut src_of = [0usize; 3];
        for (src, &off) in self.channel_offset.iter().enumerate() {
            src_of[off / plane] = src;
        }
        let (sc, bi) = (src_of.map(|s| self.scale[s]), src_of.map(|s| self.bias[s]));
        let t = &self.tables;
        for dy in 0..fit.h {
            let sy = ((dy as f32 + 0.5) * ys - 0.5).clamp(0.0, (img.height() - 1) as f32);
            let y0 = sy as usize;
            let y1 = (y0 + 1).min(img.height() - 1);
            let wy = sy - y0 as f32;
            let row0 = img.row(y0);
            let row1 = img.row(y1);
            let start = (fit.y + dy) * w + fit.x;
            let outs = p0[start..start + fit.w]
                .iter_mut()
                .zip(&mut p1[start..start + fit.w])
                .zip(&mut p2[start..start + fit.w]);
            let taps = t.x0.iter().zip(&t.x1).zip(&t.wx);
            for (((o0, o1), o2), ((&x0, &x1), &wx)) in outs.zip(taps) {
                // One bounds check per tap pixel rather than per byte.
                let (a3, b3) = (&row0[x0..x0 + 3], &row0[x1..x1 + 3]);
                let (d3, e3) = (&row1[x0..x0 + 3], &row1[x1..x1 + 3]);
                let sample = |c: usize| {
                    let (a, b) = (a3[c] as f32, b3[c] as f32);
                    let (d, e) = (d3[c] as f32, e3[c] as f32);
                    let top = a + (b - a) * wx;
                    let bottom = d + (e - d) * wx;
                    top + (bottom - top) * wy
                };
                *o0 = sample(src_of[0]) * sc[0] + bi[0];
                *o1 = sample(src_of[1]) * sc[1] + bi[1];
                *o2 = sample(src_of[2]) * sc[2] + bi[2];
            }
        }
    }

    /// A 4:2:0 picture: luma and chroma interpolated at each input pixel, then converted to RGB there.
    fn run_yuv(&mut self, img: &YuvView) -> &[f32] {
        let fit = self.fit_for(FrameView::Yuv(*img));
        self.prepare(fit);
        let step = img.chroma_rows(0).2;
        self.prepare_chroma(fit, step);
        let k = img.layout().coefficients();
        let (h, ch) = (img.height(), img.layout().chroma_size().1);
        let ys = h as f32 / fit.h as f32;
        let (w, plane) = (self.spec.width, self.spec.width * self.spec.height);
        let (px_step, off) = (self.pixel_step, self.channel_offset);
        let (scale, bias) = (self.scale, self.bias);
        let nchw = self.spec.layout == Layout::Nchw;
        let t = &self.tables;
        let mut rgb_row = vec![[0f32; 3]; fit.w];
        for dy in 0..fit.h {
            let (y0, y1, wy) = taps(dy, ys, h);
            let (cy0, cy1, cwy) = chroma_taps(y0 as f32 + wy, ch);
            let (r0, r1) = (img.y_row(y0), img.y_row(y1));
            let (u0, v0, _) = img.chroma_rows(cy0);
            let (u1, v1, _) = img.chroma_rows(cy1);
            let luma_taps = t.lx0.iter().zip(&t.lx1).zip(&t.wx);
            let chroma = t.cx0.iter().zip(&t.cx1).zip(&t.cwx);
            for (out, (((&x0, &x1), &wx), ((&c0, &c1), &cwx))) in
                rgb_row.iter_mut().zip(luma_taps.zip(chroma))
            {
                let luma = bilinear(r0[x0], r0[x1], r1[x0], r1[x1], wx, wy);
                let u = bilinear(u0[c0], u0[c1], u1[c0], u1[c1], cwx, cwy);
                let v = bilinear(v0[c0], v0[c1], v1[c0], v1[c1], cwx, cwy);
                let rgb = k.rgb(luma, u, v);
                for c in 0..3 {
                    out[c] = rgb[c].clamp(0.0, 255.0) * scale[c] + bias[c];
                }
            }
            let first = (fit.y + dy) * w + fit.x;
            if nchw {
                // Each channel's row is one contiguous run of its plane.
                for c in 0..3 {
                    let start = off[c] + first;
                    let dest = &mut self.tensor[start..start + fit.w];
                    for (d, px) in dest.iter_mut().zip(&rgb_row) {
                        *d = px[c];
                    }
                }
            } else {
                for (dx, px) in rgb_row.iter().enumerate() {
                    let base = (first + dx) * px_step;
                    for c in 0..3 {
                        self.tensor[base + off[c]] = px[c];
                    }
                }
            }
        }
        debug_assert!(!nchw || off.iter().all(|o| o % plane == 0));
        &self.tensor
    }

    /// Where a picture goes in the input.
    pub fn fit_for<'a>(&self, picture: impl Into<FrameView<'a>>) -> Fit {
        let p = picture.into();
        Fit::new(
            self.spec.resize,
            (p.width(), p.height()),
            (self.spec.width, self.spec.height),
        )
    }

    /// Geometry of the last frame.
    pub fn fit(&self) -> Fit {
        self.tables.fit.unwrap_or_default()
    }

    pub fn shape(&self) -> [usize; 4] {
        match self.spec.layout {
            Layout::Nchw => [1, 3, self.spec.height, self.spec.width],
            Layout::Nhwc => [1, self.spec.height, self.spec.width, 3],
        }
    }

    /// Sampling tables and padding for a new geometry (once per frame size, not per frame).
    fn prepare(&mut self, fit: Fit) {
        if self.tables.fit == Some(fit) {
            return;
        }
        if !fit.is_identity() {
            for p in 0..self.spec.width * self.spec.height {
                for c in 0..3 {
                    self.tensor[p * self.pixel_step + self.channel_offset[c]] =
                        self.spec.pad as f32 * self.scale[c] + self.bias[c];
                }
            }
        }
        let sw = fit.source.0;
        let xs = sw as f32 / fit.w as f32;
        let t = &mut self.tables;
        t.fit = Some(fit);
        t.x0.clear();
        t.x1.clear();
        t.wx.clear();
        for dx in 0..fit.w {
            let sx = ((dx as f32 + 0.5) * xs - 0.5).clamp(0.0, (sw - 1) as f32);
            let x0 = sx as usize;
            t.x0.push(x0 * 3);
            t.x1.push((x0 + 1).min(sw - 1) * 3);
            t.wx.push(sx - x0 as f32);
        }
    }

    /// The luma and chroma column tables of a 4:2:0 picture for `fit` (after [`Self::prepare`]).
    fn prepare_chroma(&mut self, fit: Fit, step: usize) {
        let t = &mut self.tables;
        if t.yuv == Some((fit, step)) {
            return;
        }
        let (sw, cw) = (fit.source.0, fit.source.0.div_ceil(2));
        let xs = sw as f32 / fit.w as f32;
        t.yuv = Some((fit, step));
        for v in [&mut t.lx0, &mut t.lx1, &mut t.cx0, &mut t.cx1] {
            v.clear();
        }
        t.cwx.clear();
        for dx in 0..fit.w {
            let (x0, x1, wx) = taps(dx, xs, sw);
            t.lx0.push(x0);
            t.lx1.push(x1);
            let (c0, c1, cwx) = chroma_taps(x0 as f32 + wx, cw);
            t.cx0.push(c0 * step);
            t.cx1.push(c1 * step);
            t.cwx.push(cwx);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn spec(color: ColorOrder, layout: Layout) -> InputSpec {
        InputSpec {
            name: "x".into(),
            width: 4,
            height: 2,
            layout,
            dtype: "f32".into(),
            color,
            mean: [10.0, 20.0, 30.0],
            std: Some([2.0, 4.0, 5.0]),
            scale: None,
            resize: ResizeMode::Stretch,
            pad: 114,
        }
    }

    fn uniform(w: usize, h: usize, stride: usize, rgb: [u8; 3]) -> Vec<u8> {
        let mut data = vec![0u8; stride * h];
        for y in 0..h {
            for x in 0..w {
                data[y * stride + x * 3..][..3].copy_from_slice(&rgb);
            }
        }
        data
    }

    #[test]
    fn uniform_image_normalises_each_channel_in_model_order() {
        // A padded 8×4 RGB image of (R=100, G=50, B=30); stride has 5 bytes of padding.
        let (w, h, stride) = (8, 4, 8 * 3 + 5);
        let data = uniform(w, h, stride, [100, 50, 30]);
        let img = ImageView::new(w, h, stride, &data).unwrap();
        let mut p = Preprocessor::new(&spec(ColorOrder::Bgr, Layout::Nchw));
        let t = p.run(img).to_vec();
        // BGR model: channel 0 is blue = 30 → (30-10)/2 = 10; channel 1 green (50-20)/4 = 7.5; channel 2 red (100-30)/5 = 14.
        assert!(t[..8].iter().all(|v| (*v - 10.0).abs() < 1e-4), "{t:?}");
        assert!(t[8..16].iter().all(|v| (*v - 7.5).abs() < 1e-4));
        assert!(t[16..].iter().all(|v| (*v - 14.0).abs() < 1e-4));
    }

    #[test]
    fn nhwc_interleaves_channels() {
        let data = vec![90u8; 4 * 2 * 3];
        let img = ImageView::new(4, 2, 12, &data).unwrap();
        let mut p = Preprocessor::new(&spec(ColorOrder::Rgb, Layout::Nhwc));
        let t = p.run(img);
        assert_eq!(&t[..3], &[40.0, 17.5, 12.0]);
    }

    #[test]
    fn scale_normalisation_multiplies_after_the_mean() {
        let mut s = spec(ColorOrder::Rgb, Layout::Nchw);
        (s.std, s.scale, s.mean) = (None, Some(1.0 / 255.0), [0.0; 3]);
        let data = uniform(4, 2, 12, [255, 0, 51]);
        let img = ImageView::new(4, 2, 12, &data).unwrap();
        let t = Preprocessor::new(&s).run(img).to_vec();
        assert!((t[0] - 1.0).abs() < 1e-6 && t[8] == 0.0 && (t[16] - 0.2).abs() < 1e-6);
    }

    #[test]
    fn a_wide_frame_is_letterboxed_into_the_middle_rows() {
        // 8×2 into 4×4: scale 0.5, content 4×1 at y = 1 (pad rows 0, 2, 3).
        let fit = Fit::new(ResizeMode::Letterbox, (8, 2), (4, 4));
        assert_eq!((fit.x, fit.y, fit.w, fit.h), (0, 1, 4, 1));
        let mut s = spec(ColorOrder::Rgb, Layout::Nchw);
        (s.width, s.height, s.resize, s.std, s.mean) =
            (4, 4, ResizeMode::Letterbox, Some([1.0; 3]), [0.0; 3]);
        let data = uniform(8, 2, 24, [200, 200, 200]);
        let mut p = Preprocessor::new(&s);
        let t = p.run(ImageView::new(8, 2, 24, &data).unwrap());
        let red: Vec<f32> = t[..16].to_vec();
        assert_eq!(&red[..4], &[114.0; 4]);
        assert_eq!(&red[4..8], &[200.0; 4]);
        assert_eq!(&red[8..], &[114.0; 8]);
    }

    /// An I420 picture from a function of (x, y) → (Y, U, V), chroma taken at each 2 × 2 block's
    /// top-left pixel; planes padded like a decoder's.
    fn i420(
        w: usize,
        h: usize,
        f: impl Fn(usize, usize) -> [u8; 3],
    ) -> (crate::base::YuvLayout, Vec<u8>) {
        use crate::base::{Chroma, ColorMatrix, YuvLayout};
        let (cw, ch) = (w.div_ceil(2), h.div_ceil(2));
        let (ys, cs) = (w + 3, cw + 1);
        let mut data = vec![0u8; ys * h + 2 * cs * ch];
        let (u_off, v_off) = (ys * h, ys * h + cs * ch);
        for y in 0..h {
            for x in 0..w {
                let p = f(x, y);
                data[y * ys + x] = p[0];
                if x % 2 == 0 && y % 2 == 0 {
                    data[u_off + y / 2 * cs + x / 2] = p[1];
                    data[v_off + y / 2 * cs + x / 2] = p[2];
                }
            }
        }
        let layout = YuvLayout {
            width: w,
            height: h,
            y_stride: ys,
            chroma: Chroma::Planar {
                u_offset: u_off,
                v_offset: v_off,
                stride: cs,
            },
            matrix: ColorMatrix::Bt709,
            full_range: false,
        };
        (layout, data)
    }

    fn plain(layout: Layout, resize: ResizeMode, iw: usize, ih: usize) -> InputSpec {
        let mut s = spec(ColorOrder::Bgr, layout);
        (s.width, s.height, s.resize, s.std, s.mean) = (iw, ih, resize, Some([1.0; 3]), [0.0; 3]);
        s
    }

    proptest! {
        /// With one chroma over the picture and no colour clipped, the 4:2:0 path gives what converting the whole frame to RGB
        /// first gives (the conversion is linear in luma), within rounding.
        #[test]
        fn a_yuv_picture_reads_as_its_rgb_conversion(
            sw in 2usize..60, sh in 2usize..60, iw in 4usize..40, ih in 4usize..40,
            u in 110u8..146, v in 110u8..146, seed in 0usize..1000, letterbox in any::<bool>(), nchw in any::<bool>(),
        ) {
            let (layout, data) = i420(sw, sh, |x, y| [(60 + (x * 31 + y * 17 + seed) % 120) as u8, u, v]);
            let yuv = YuvView::new(layout, &data).unwrap();
            let rgb = yuv.to_rgb();
            let resize = if letterbox { ResizeMode::Letterbox } else { ResizeMode::Stretch };
            let s = plain(if nchw { Layout::Nchw } else { Layout::Nhwc }, resize, iw, ih);
            let from_rgb = Preprocessor::new(&s).run(ImageView::packed(sw, sh, &rgb).unwrap()).to_vec();
            let mut p = Preprocessor::new(&s);
            let from_yuv = p.run(FrameView::Yuv(yuv)).to_vec();
            for (i, (a, b)) in from_rgb.iter().zip(&from_yuv).enumerate() {
                prop_assert!((a - b).abs() <= 1.0, "{i}: {a} vs {b}");
            }
        }
    }

    #[test]
    fn a_smooth_colour_picture_reads_within_a_few_levels_of_its_rgb_conversion() {
        // Chroma varies too: the frame-first conversion takes each 2 × 2 block's chroma as it is, the
        // 4:2:0 path interpolates it; on a smooth picture they agree within a few levels.
        let (w, h) = (64, 48);
        let (layout, data) = i420(w, h, |x, y| {
            [(30 + x * 3) as u8, (90 + y * 2) as u8, (160 - x) as u8]
        });
        let yuv = YuvView::new(layout, &data).unwrap();
        let rgb = yuv.to_rgb();
        let s = plain(Layout::Nchw, ResizeMode::Letterbox, 32, 32);
        let a = Preprocessor::new(&s)
            .run(ImageView::packed(w, h, &rgb).unwrap())
            .to_vec();
        let b = Preprocessor::new(&s).run(FrameView::Yuv(yuv)).to_vec();
        let worst = a
            .iter()
            .zip(&b)
            .map(|(a, b)| (a - b).abs())
            .fold(0.0, f32::max);
        assert!(worst <= 4.0, "worst difference {worst}");
    }

    proptest! {
        /// A box in frame pixels, mapped into the letterboxed input and back, lands within 1 px of itself.
        #[test]
        fn boxes_round_trip_through_letterbox_within_one_pixel(
            sw in 16usize..4000, sh in 16usize..3000, iw in 32usize..1280, ih in 32usize..1280,
            fx in 0.0f32..1.0, fy in 0.0f32..1.0, fw in 0.0f32..1.0, fh in 0.0f32..1.0,
        ) {
            let fit = Fit::new(ResizeMode::Letterbox, (sw, sh), (iw, ih));
            prop_assert!(fit.x + fit.w <= iw && fit.y + fit.h <= ih);
            prop_assert!(fit.w == iw || fit.h == ih, "the frame fills one axis");
            let (x1, y1) = (fx * sw as f32, fy * sh as f32);
            let (x2, y2) = (x1 + fw * (sw as f32 - x1), y1 + fh * (sh as f32 - y1));
            // What a decoder would output: the box in input pixels, normalised to the input.
            let (a, b) = fit.to_input(x1, y1);
            let (c, d) = fit.to_input(x2, y2);
            let back = fit.unmap(BBox { x1: a / iw as f32, y1: b / ih as f32, x2: c / iw as f32, y2: d / ih as f32 });
            for (got, want, size) in [(back.x1, x1, sw), (back.y1, y1, sh), (back.x2, x2, sw), (back.y2, y2, sh)] {
                prop_assert!((got * size as f32 - want).abs() <= 1.0, "{got} × {size} vs {want} ({fit:?})");
            }
        }

        /// The NCHW fast path and the general (NHWC) path give the same values, only laid out differently.
        #[test]
        fn nchw_and_nhwc_hold_the_same_values(sw in 1usize..40, sh in 1usize..40, seed in 0usize..1000, letterbox in any::<bool>(), bgr in any::<bool>()) {
            let mut s = spec(if bgr { ColorOrder::Bgr } else { ColorOrder::Rgb }, Layout::Nchw);
            (s.width, s.height) = (13, 7);
            if letterbox { s.resize = ResizeMode::Letterbox; }
            let stride = sw * 3 + 5; // padded rows
            let data: Vec<u8> = (0..stride * sh).map(|i| ((i * 7919 + seed) % 256) as u8).collect();
            let img = ImageView::new(sw, sh, stride, &data).unwrap();
            let nchw = Preprocessor::new(&s).run(img).to_vec();
            s.layout = Layout::Nhwc;
            let nhwc = Preprocessor::new(&s).run(img).to_vec();
            for c in 0..3 {
                for p in 0..13 * 7 {
                    prop_assert_eq!(nchw[c * 13 * 7 + p], nhwc[p * 3 + c]);
                }
            }
        }

        /// The preprocessor writes the frame exactly into the rectangle the geometry says, padding the rest.
        #[test]
        fn letterbox_content_lies_exactly_where_the_fit_says(sw in 1usize..64, sh in 1usize..64, iw in 1usize..48, ih in 1usize..48) {
            let mut s = spec(ColorOrder::Rgb, Layout::Nhwc);
            (s.width, s.height, s.resize, s.std, s.mean, s.pad) = (iw, ih, ResizeMode::Letterbox, Some([1.0; 3]), [0.0; 3], 0);
            let data = uniform(sw, sh, sw * 3, [255, 255, 255]);
            let mut p = Preprocessor::new(&s);
            let t = p.run(ImageView::new(sw, sh, sw * 3, &data).unwrap()).to_vec();
            let f = p.fit();
            for y in 0..ih {
                for x in 0..iw {
                    let inside = (f.x..f.x + f.w).contains(&x) && (f.y..f.y + f.h).contains(&y);
                    prop_assert_eq!(t[(y * iw + x) * 3], if inside { 255.0 } else { 0.0 }, "({}, {}) {:?}", x, y, f);
                }
            }
        }
    }
}
