//! `warden eval`: precision/recall of the real engines on labeled corpora, and
//! the baseline gate CI runs.
//!
//! Exit codes: 0 evaluated (and no regression against `--baseline`), 1 a
//! metric regressed, 2 bad input (the message names file and line) or usage.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{bail, Result};
use warden_eval::{compare, evaluate, Corpus, Engines, Record, Report, DEFAULT_MAX_DROP};

use crate::input::EngineArgs;

/// Arguments of `warden eval`.
#[derive(clap::Args)]
pub struct Args {
    /// Labeled JSONL corpus: PII records `{"id","text","spans":[{"start","end","type"}]}`
    /// (code point offsets) and/or injection records
    /// `{"id"?,"text","label","source"?,"role"?,"lang"?,"tags"?}`.
    /// Repeatable.
    #[arg(long, value_name = "FILE.jsonl", required = true)]
    pub corpus: Vec<PathBuf>,
    /// Write the full JSON report (metrics and failing ids, never texts) here.
    #[arg(long, value_name = "FILE")]
    pub report: Option<PathBuf>,
    /// Compare with this stored report; exit 1 on a regression.
    #[arg(long, value_name = "FILE")]
    pub baseline: Option<PathBuf>,
    /// Largest tolerated drop of any higher-is-better metric, in percentage
    /// points (false-positive rates may not rise at all).
    #[arg(long, value_name = "POINTS", default_value_t = DEFAULT_MAX_DROP)]
    pub max_drop: f64,
    /// Rewrite the --baseline file with this run's report instead of comparing.
    #[arg(long, requires = "baseline")]
    pub update_baseline: bool,
    /// Engine options (`--packs DIR`, `--config FILE`).
    #[command(flatten)]
    pub engine: EngineArgs,
}

/// Runs `warden eval`.
pub fn run(args: Args) -> Result<ExitCode> {
    if !args.max_drop.is_finite() || args.max_drop < 0.0 {
        bail!("--max-drop must be a non-negative number of percentage points");
    }
    let corpora = args
        .corpus
        .iter()
        .map(|p| Corpus::load(p))
        .collect::<Result<Vec<_>, _>>()?;
    let has = |pii: bool| {
        corpora
            .iter()
            .flat_map(|c| &c.records)
            .any(|l| matches!(l.record, Record::Pii(_)) == pii)
    };
    // Build only the engines the corpora need; both are the real engines
    // with the same packs and config `warden scan` would use.
    let cfg = args.engine.file_config()?;
    let scanner = if has(true) {
        Some(args.engine.scanner(&cfg)?)
    } else {
        None
    };
    let detector = if has(false) {
        Some(args.engine.detector(&cfg)?)
    } else {
        None
    };
    let engines = Engines {
        pii: scanner.as_ref().map(|s| s as &dyn warden_eval::PiiDetector),
        injection: detector
            .as_ref()
            .map(|d| d as &dyn warden_eval::InjectionScorer),
    };
    let report = evaluate(&corpora, engines)?;
    let _ = write!(std::io::stdout(), "{}", report.render());
    if let Some(path) = &args.report {
        report.save(path)?;
    }
    let Some(baseline_path) = &args.baseline else {
        return Ok(ExitCode::SUCCESS);
    };
    if args.update_baseline {
        report.save(baseline_path)?;
        let _ = writeln!(
            std::io::stdout(),
            "\nbaseline written to {}",
            baseline_path.display()
        );
        return Ok(ExitCode::SUCCESS);
    }
    let baseline = Report::load(baseline_path)?;
    let diff = compare(&baseline, &report, args.max_drop);
    let _ = writeln!(std::io::stdout(), "\nbaseline {}:", baseline_path.display());
    let _ = write!(std::io::stdout(), "{}", diff.render(args.max_drop));
    Ok(if diff.passed() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}
