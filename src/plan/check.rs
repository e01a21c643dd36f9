//! The list every configuration problem is pushed to, each with its `file:line`, so an installer sees all
//! of them at once.

use crate::config::{ConfigError, Lines};
use std::path::Path;
use toml::Spanned;

pub(crate) struct Check<'a> {
    pub(crate) lines: &'a Lines<'a>,
    pub(crate) base: &'a Path,
    errors: Vec<ConfigError>,
}

impl<'a> Check<'a> {
    pub(crate) fn new(lines: &'a Lines<'a>, base: &'a Path) -> Self {
        Self {
            lines,
            base,
            errors: Vec::new(),
        }
    }

    pub(crate) fn into_errors(self) -> Vec<ConfigError> {
        self.errors
    }

    pub(crate) fn push<T>(&mut self, at: &Spanned<T>, message: impl Into<String>) {
        self.errors.push(self.lines.error(&at.span(), message));
    }
}

/// The longest time any key of the file may hold: 30 days. Longer is a typo (and `1e300` seconds is no
/// time at all to a clock).
pub(crate) const MAX_SECONDS: f64 = 30.0 * 86_400.0;

impl Check<'_> {
    /// `value` seconds must be finite and within `min`–30 days; returns whether it is.
    pub(crate) fn seconds<T>(&mut self, at: &Spanned<T>, what: &str, value: f64, min: f64) -> bool {
        let ok = value.is_finite() && (min..=MAX_SECONDS).contains(&value);
        if !ok {
            self.push(
                at,
                format!("{what} = {value} is out of range {min}–{MAX_SECONDS} seconds (30 days)"),
            );
        }
        ok
    }

    /// A whole number within `range`; returns whether it is.
    pub(crate) fn whole<T>(
        &mut self,
        at: &Spanned<T>,
        what: &str,
        value: u64,
        range: std::ops::RangeInclusive<u64>,
    ) -> bool {
        let ok = range.contains(&value);
        if !ok {
            self.push(
                at,
                format!(
                    "{what} = {value} is out of range {}–{}",
                    range.start(),
                    range.end()
                ),
            );
        }
        ok
    }

    /// Text a person reads or a protocol carries: at most `max` characters, no control characters (a
    /// newline in a URL or a name would end up in a request line or a log line).
    pub(crate) fn text<T>(&mut self, at: &Spanned<T>, what: &str, value: &str, max: usize) -> bool {
        let ok = value.chars().count() <= max && !value.chars().any(char::is_control);
        if !ok {
            self.push(
                at,
                format!("{what} must be at most {max} characters with no control characters (newlines, tabs)"),
            );
        }
        ok
    }
}

/// Whether two edges of the closed polygon cross (a bow-tie zone has no inside that means anything).
pub(crate) fn self_intersects(points: &[[f64; 2]]) -> bool {
    let n = points.len();
    if n < 4 {
        return false;
    }
    let edge = |i: usize| (points[i], points[(i + 1) % n]);
    (0..n).any(|i| {
        (i + 1..n)
            .filter(|&j| j != i + 1 && !(i == 0 && j == n - 1))
            .any(|j| segments_cross(edge(i), edge(j)))
    })
}

fn segments_cross((a, b): ([f64; 2], [f64; 2]), (c, d): ([f64; 2], [f64; 2])) -> bool {
    let orient = |p: [f64; 2], q: [f64; 2], r: [f64; 2]| {
        let v = (q[0] - p[0]) * (r[1] - p[1]) - (q[1] - p[1]) * (r[0] - p[0]);
        if v.abs() < 1e-12 { 0 } else { v.signum() as i8 }
    };
    let (o1, o2, o3, o4) = (
        orient(a, b, c),
        orient(a, b, d),
        orient(c, d, a),
        orient(c, d, b),
    );
    o1 * o2 < 0 && o3 * o4 < 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bow_tie_crosses_itself_and_a_square_or_a_concave_shape_does_not() {
        let square = [[0.0, 0.0], [1.0, 0.0], [1.0, 1.0], [0.0, 1.0]];
        let bow_tie = [[0.0, 0.0], [1.0, 1.0], [1.0, 0.0], [0.0, 1.0]];
        let l_shape = [
            [0.0, 0.0],
            [1.0, 0.0],
            [1.0, 0.5],
            [0.5, 0.5],
            [0.5, 1.0],
            [0.0, 1.0],
        ];
        assert!(!self_intersects(&square));
        assert!(self_intersects(&bow_tie));
        assert!(!self_intersects(&l_shape));
        assert!(!self_intersects(&[[0.0, 0.0], [1.0, 0.0], [0.0, 1.0]]));
    }
}
