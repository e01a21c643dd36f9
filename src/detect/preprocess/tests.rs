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
