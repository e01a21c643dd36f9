//! The work-order codes an incident carries for its category (GB/T 47678.5-2026, GB/T 30428.2-2013,
//! CJ/T 214-2007, the city's own type id, a local extension). Read from the configuration, written into events.

use serde::{Deserialize, Serialize};

/// The codes an event carries for its category.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct CategoryCodes {
    /// Display name (Chinese name as the platform shows it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// GB/T 47678.5-2026 event code, 5 digits (e.g. `09006` 占道经营).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gbt47678: Option<String>,
    /// GB/T 30428.2-2013 event code, `NN-NN` (e.g. `04-06`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gbt30428: Option<String>,
    /// CJ/T 214-2007 code, as the city uses it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cjt214: Option<String>,
    /// The city's own type id for this category.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub city_type_id: Option<i64>,
    /// A local extension code where no standard has an item (e.g. crowds).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub local: Option<String>,
}
