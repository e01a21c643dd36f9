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
