//! `streetsight eval`: the command-line side of measuring a bundle — bundles by path or installed name,
//! a camera's zones from a configuration, the report written to a directory and summed up on the terminal.

use crate::eval::{EvalOptions, Report, Rules};
use anyhow::{Context, Result, bail};
use std::path::{Path, PathBuf};

pub struct EvalArgs {
    pub model: String,
    pub baseline: Option<String>,
    pub media: PathBuf,
    pub labels: PathBuf,
    /// Count per zone of this camera of this configuration.
    pub config: Option<PathBuf>,
    pub camera: Option<String>,
    /// Labelled incidents, run through that camera's rules.
    pub incidents: Option<PathBuf>,
    pub count_class: String,
    pub count_score: f32,
    pub threads: usize,
    pub out: PathBuf,
    /// Directories to find installed bundles by name in.
    pub dirs: Vec<PathBuf>,
}

/// Run the evaluation, write `report.json` and `report.html` into `args.out`, return the report.
pub fn run(args: &EvalArgs) -> Result<Report> {
    let bundle = |name: &str| {
        super::models::resolve(name, &args.dirs).with_context(|| {
            format!("no model bundle `{name}` (a directory with a manifest.toml, or an installed bundle's name)")
        })
    };
    if !(args.count_score > 0.0 && args.count_score <= 1.0) {
        bail!(
            "--count-score {} is out of range: above 0, at most 1",
            args.count_score
        );
    }
    if !(1..=16).contains(&args.threads) {
        bail!("--threads {} is out of range: 1 to 16", args.threads);
    }
    let rules = rules(args.config.as_deref(), args.camera.as_deref())?;
    let zones = match &rules {
        Some(r) => r
            .loaded
            .config
            .cameras
            .iter()
            .map(|c| c.get_ref())
            .find(|c| c.id == r.camera)
            .map(|c| {
                c.zones
                    .iter()
                    .map(|z| crate::plan::zone_spec(z.get_ref()))
                    .collect()
            })
            .unwrap_or_default(),
        None => Vec::new(),
    };
    let opts = EvalOptions {
        model: bundle(&args.model)?,
        baseline: args.baseline.as_deref().map(bundle).transpose()?,
        media: args.media.clone(),
        labels: args.labels.clone(),
        zones,
        count_class: args.count_class.clone(),
        count_score: args.count_score,
        threads: args.threads,
        progress: true,
        rules,
        incidents: args.incidents.clone(),
    };
    let report = crate::eval::run(&opts)?;
    report
        .write(&args.out)
        .with_context(|| format!("cannot write the report into {}", args.out.display()))?;
    Ok(report)
}

/// Camera `camera` of the configuration `config` (validated as `check` does): its zones and rules.
fn rules(config: Option<&Path>, camera: Option<&str>) -> Result<Option<Rules>> {
    let (config, camera) = match (config, camera) {
        (None, None) => return Ok(None),
        (Some(c), Some(cam)) => (c, cam),
        _ => bail!("--config and --camera go together: the zones and rules are that camera's"),
    };
    let loaded = crate::plan::load(config).map_err(|e| anyhow::anyhow!("{e}"))?;
    if !loaded
        .config
        .cameras
        .iter()
        .any(|c| c.get_ref().id == camera)
    {
        bail!("{}: no camera `{camera}`", config.display());
    }
    Ok(Some(Rules {
        loaded,
        camera: camera.to_string(),
    }))
}
