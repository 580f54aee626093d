//! Comparing a report with a stored baseline: the CI regression gate.

use std::collections::BTreeSet;
use std::fmt::Write as _;

use crate::report::{Better, Report};

/// Default tolerance for a drop, in percentage points.
pub const DEFAULT_MAX_DROP: f64 = 0.5;

/// Float noise allowed when comparing stored and fresh values.
const EPS: f64 = 1e-6;

/// Why a metric fails the gate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cause {
    /// A higher-is-better metric fell by more than the tolerance.
    Dropped,
    /// A false-positive rate rose (no tolerance).
    Rose,
    /// The baseline has a value, the current report has none (the corpus
    /// changed, or a detector stopped predicting a type at all).
    Missing,
}

/// One metric that fails the gate.
#[derive(Debug, Clone, PartialEq)]
pub struct Regression {
    /// Metric name, e.g. `pii.exact.EMAIL.recall`.
    pub metric: String,
    /// What is wrong.
    pub cause: Cause,
    /// Baseline value, percent.
    pub baseline: f64,
    /// Current value, percent (`None` when missing).
    pub current: Option<f64>,
    /// Ids failing this metric now that did not fail it in the baseline.
    pub newly_failing: Vec<String>,
}

/// A metric that moved in the good direction, or that the baseline lacks
/// (informational; refresh the baseline with `--update-baseline` to lock it in).
#[derive(Debug, Clone, PartialEq)]
pub struct Improvement {
    /// Metric name.
    pub metric: String,
    /// Baseline value, percent (`None` if it was undefined or absent).
    pub baseline: Option<f64>,
    /// Current value, percent.
    pub current: f64,
}

/// The outcome of [`compare`].
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Diff {
    /// Metrics that fail the gate; empty means the gate passes.
    pub regressions: Vec<Regression>,
    /// Metrics that got better.
    pub improvements: Vec<Improvement>,
    /// Corpora whose content differs from the baseline's (by path and SHA-256).
    pub changed_corpora: Vec<String>,
}

impl Diff {
    /// True when nothing regressed.
    pub fn passed(&self) -> bool {
        self.regressions.is_empty()
    }

    /// Human-readable summary: regressions with the ids that newly fail
    /// (ids only, never texts), then improvements.
    pub fn render(&self, max_drop: f64) -> String {
        let mut out = String::new();
        for c in &self.changed_corpora {
            let _ = writeln!(
                out,
                "note: corpus {c} differs from the one the baseline measured"
            );
        }
        for r in &self.regressions {
            let cur = r
                .current
                .map_or("missing".to_string(), |v| format!("{v:.2}"));
            let why = match r.cause {
                Cause::Dropped => format!("dropped more than {max_drop} points"),
                Cause::Rose => "false-positive rate rose".to_string(),
                Cause::Missing => "no value in the current report".to_string(),
            };
            let _ = writeln!(
                out,
                "REGRESSION {}: {:.2} -> {cur} ({why})",
                r.metric, r.baseline
            );
            if !r.newly_failing.is_empty() {
                let _ = writeln!(
                    out,
                    "  newly failing ({}): {}",
                    r.newly_failing.len(),
                    r.newly_failing.join(", ")
                );
            }
        }
        for i in &self.improvements {
            let _ = match i.baseline {
                Some(b) => writeln!(out, "improved {}: {b:.2} -> {:.2}", i.metric, i.current),
                None => writeln!(out, "new metric {}: {:.2}", i.metric, i.current),
            };
        }
        let verdict = if self.passed() { "PASS" } else { "FAIL" };
        let _ = writeln!(
            out,
            "baseline gate: {verdict} ({} regressions, {} improvements)",
            self.regressions.len(),
            self.improvements.len()
        );
        out
    }
}

/// Compares `current` with `baseline`. A higher-is-better metric regresses
/// when it drops by more than `max_drop` percentage points; a false-positive
/// rate regresses when it rises at all; a metric with a baseline value that
/// the current report lacks regresses too (fail closed).
///
/// # Example
/// ```
/// use std::collections::BTreeMap;
/// use warden_eval::{compare, Better, Metric, Report, REPORT_VERSION};
/// let report = |recall: f64, failing: &[&str]| Report {
///     version: REPORT_VERSION, corpora: vec![], pii: None, injection: None,
///     metrics: BTreeMap::from([("pii.exact.EMAIL.recall".to_string(), Metric {
///         value: Some(recall), better: Better::Higher, support: 10,
///         failing: failing.iter().map(|s| s.to_string()).collect() })]),
/// };
/// let diff = compare(&report(90.0, &["a"]), &report(80.0, &["a", "b"]), 0.5);
/// assert!(!diff.passed());
/// assert_eq!(diff.regressions[0].newly_failing, vec!["b".to_string()]);
/// assert!(compare(&report(90.0, &["a"]), &report(89.6, &["a"]), 0.5).passed());
/// ```
pub fn compare(baseline: &Report, current: &Report, max_drop: f64) -> Diff {
    let mut diff = Diff::default();
    for c in &current.corpora {
        if !baseline
            .corpora
            .iter()
            .any(|b| b.path == c.path && b.sha256 == c.sha256)
        {
            diff.changed_corpora.push(c.path.clone());
        }
    }
    for (name, base) in &baseline.metrics {
        let Some(b) = base.value else { continue };
        let cur = current.metrics.get(name);
        let c = cur.and_then(|m| m.value);
        let cause = match (c, base.better) {
            (None, _) => Some(Cause::Missing),
            (Some(c), Better::Higher) if b - c > max_drop + EPS => Some(Cause::Dropped),
            (Some(c), Better::Lower) if c > b + EPS => Some(Cause::Rose),
            _ => None,
        };
        match cause {
            Some(cause) => {
                let old: BTreeSet<&String> = base.failing.iter().collect();
                let newly_failing = cur
                    .map(|m| {
                        m.failing
                            .iter()
                            .filter(|id| !old.contains(id))
                            .cloned()
                            .collect()
                    })
                    .unwrap_or_default();
                diff.regressions.push(Regression {
                    metric: name.clone(),
                    cause,
                    baseline: b,
                    current: c,
                    newly_failing,
                });
            }
            None => {
                let Some(c) = c else { continue };
                let better = match base.better {
                    Better::Higher => c > b + EPS,
                    Better::Lower => c < b - EPS,
                };
                if better {
                    diff.improvements.push(Improvement {
                        metric: name.clone(),
                        baseline: Some(b),
                        current: c,
                    });
                }
            }
        }
    }
    for (name, m) in &current.metrics {
        let had = baseline.metrics.get(name).and_then(|b| b.value).is_some();
        if let (false, Some(c)) = (had, m.value) {
            diff.improvements.push(Improvement {
                metric: name.clone(),
                baseline: None,
                current: c,
            });
        }
    }
    diff
}
