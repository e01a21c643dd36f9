//! `[camera.health]`: the camera-health checks (视频质量诊断). Every check is on by default; the defaults
//! are explained in docs/rules.md.

use serde::Deserialize;
use toml::Spanned;

/// How a camera's picture is judged; every key may be left out.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HealthConfig {
    /// 移位: the view moved, turned or zoomed against the reference view.
    #[serde(default = "super::default_true")]
    pub moved: bool,
    /// 遮挡: most of the picture lost its texture.
    #[serde(default = "super::default_true")]
    pub covered: bool,
    /// 模糊: sharpness fell well below the camera's own baseline.
    #[serde(default = "super::default_true")]
    pub blurred: bool,
    /// 画面冻结: the picture has not changed at all for `frozen_after_s`.
    #[serde(default = "super::default_true")]
    pub frozen: bool,
    /// 亮度异常: black or blown out, and unlike the camera's normal.
    #[serde(default = "super::default_true")]
    pub brightness: bool,
    /// 偏色: one colour dominates, and unlike the camera's normal.
    #[serde(default = "super::default_true")]
    pub colour: bool,
    /// Shift of the view, as a fraction of the picture's width or height, above which it has moved.
    #[serde(default = "default_shift_tolerance")]
    pub shift_tolerance: Spanned<f32>,
    /// Rotation in degrees above which the view has moved.
    #[serde(default = "default_rotation_tolerance")]
    pub rotation_tolerance_deg: Spanned<f32>,
    /// Change of zoom (fraction) above which the view has moved.
    #[serde(default = "default_zoom_tolerance")]
    pub zoom_tolerance: Spanned<f32>,
    /// Share of the reference's textured picture that must lose its texture for `covered`.
    #[serde(default = "default_covered_fraction")]
    pub covered_fraction: Spanned<f32>,
    /// Sharpness below this share of the camera's baseline is `blurred`.
    #[serde(default = "default_blur_ratio")]
    pub blur_ratio: Spanned<f32>,
    /// Seconds without any change of the picture before it is `frozen`.
    #[serde(default = "default_frozen_after_s")]
    pub frozen_after_s: Spanned<f64>,
    /// Seconds a condition must hold before it is raised.
    #[serde(default = "default_raise_after_s")]
    pub raise_after_s: Spanned<f64>,
    /// Seconds a raised condition must be absent before it clears.
    #[serde(default = "default_clear_after_s")]
    pub clear_after_s: Spanned<f64>,
}

impl Default for HealthConfig {
    fn default() -> Self {
        HealthConfig {
            moved: true,
            covered: true,
            blurred: true,
            frozen: true,
            brightness: true,
            colour: true,
            shift_tolerance: default_shift_tolerance(),
            rotation_tolerance_deg: default_rotation_tolerance(),
            zoom_tolerance: default_zoom_tolerance(),
            covered_fraction: default_covered_fraction(),
            blur_ratio: default_blur_ratio(),
            frozen_after_s: default_frozen_after_s(),
            raise_after_s: default_raise_after_s(),
            clear_after_s: default_clear_after_s(),
        }
    }
}

fn default_shift_tolerance() -> Spanned<f32> {
    Spanned::new(0..0, 0.03)
}
fn default_rotation_tolerance() -> Spanned<f32> {
    Spanned::new(0..0, 2.0)
}
fn default_zoom_tolerance() -> Spanned<f32> {
    Spanned::new(0..0, 0.05)
}
fn default_covered_fraction() -> Spanned<f32> {
    Spanned::new(0..0, 0.6)
}
fn default_blur_ratio() -> Spanned<f32> {
    Spanned::new(0..0, 0.5)
}
fn default_frozen_after_s() -> Spanned<f64> {
    Spanned::new(0..0, 30.0)
}
fn default_raise_after_s() -> Spanned<f64> {
    Spanned::new(0..0, 10.0)
}
fn default_clear_after_s() -> Spanned<f64> {
    Spanned::new(0..0, 10.0)
}
