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
    /// One input row of a 4:2:0 picture, converted and normalised (reused: no per-frame allocation).
    yuv_row: Vec<[f32; 3]>,
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
            yuv_row: Vec::new(),
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
        let mut rgb_row = std::mem::take(&mut self.yuv_row);
        rgb_row.resize(fit.w, [0.0; 3]);
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
        self.yuv_row = rgb_row;
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
mod tests;
