//! Work-order codes per incident category, with the shipped defaults.
//!
//! Three code systems are in use and a city configures whichever its platform files cases by:
//! GB/T 47678.5-2026 (5 digits, 2+3; replaces GB/T 30428.2 from 2026-07-01), GB/T 30428.2-2013 (2+2, written
//! `04-06`) and CJ/T 214-2007. Each city also maps them to its own integer type ids. No standard has a crowd
//! item, so crowds ship under a local extension code, and so do the camera's own faults (`camera_health`).

pub use crate::base::CategoryCodes;
use std::collections::BTreeMap;

/// The shipped defaults, from the standards' tables.
pub fn default_categories() -> BTreeMap<String, CategoryCodes> {
    let entry = |name: &str,
                 gbt47678: Option<&str>,
                 gbt30428: Option<&str>,
                 local: Option<&str>| CategoryCodes {
        name: Some(name.into()),
        gbt47678: gbt47678.map(Into::into),
        gbt30428: gbt30428.map(Into::into),
        cjt214: None,
        city_type_id: None,
        local: local.map(Into::into),
    };
    BTreeMap::from([
        (
            "street_vending".into(),
            entry("占道经营", Some("09006"), Some("04-06"), None),
        ),
        (
            "unlicensed_vendor".into(),
            entry("无照经营游商", Some("09001"), Some("04-01"), None),
        ),
        (
            "outside_store".into(),
            entry("店外经营", Some("09005"), None, None),
        ),
        (
            "hanging_laundry".into(),
            entry("沿街晾挂", Some("06007"), Some("01-07"), None),
        ),
        (
            "exposed_garbage".into(),
            entry("暴露垃圾", Some("06010"), Some("01-10"), None),
        ),
        (
            "bin_overflow".into(),
            entry("垃圾站（箱）满溢", Some("06042"), None, Some("01-98")),
        ),
        (
            "piled_debris".into(),
            entry("乱堆杂物", Some("06036"), None, None),
        ),
        (
            "bicycle_parking".into(),
            entry("非机动车乱停放", Some("09010"), None, None),
        ),
        (
            "outdoor_advertising".into(),
            entry("违规户外广告", Some("07003"), None, None),
        ),
        (
            "crowd_density".into(),
            entry("人群聚集", None, None, Some("99-01")),
        ),
        (
            "camera_health".into(),
            entry("视频质量异常", None, None, Some("99-02")),
        ),
    ])
}

/// Is `code` a GB/T 47678.5 code (five digits)?
pub fn is_gbt47678_code(code: &str) -> bool {
    code.len() == 5 && code.bytes().all(|b| b.is_ascii_digit())
}

/// Is `code` a GB/T 30428.2 code (`NN-NN`)?
pub fn is_gbt30428_code(code: &str) -> bool {
    let b = code.as_bytes();
    b.len() == 5 && b[2] == b'-' && b[..2].iter().chain(&b[3..]).all(u8::is_ascii_digit)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shipped_defaults_are_well_formed() {
        for (key, codes) in default_categories() {
            if let Some(c) = &codes.gbt47678 {
                assert!(is_gbt47678_code(c), "{key}: {c}");
            }
            if let Some(c) = &codes.gbt30428 {
                assert!(is_gbt30428_code(c), "{key}: {c}");
            }
        }
    }

    #[test]
    fn code_formats_are_checked() {
        assert!(is_gbt47678_code("09006"));
        assert!(!is_gbt47678_code("0900"));
        assert!(is_gbt30428_code("04-06"));
        assert!(!is_gbt30428_code("0406"));
    }
}
