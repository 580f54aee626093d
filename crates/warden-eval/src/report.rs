//! The evaluation report: tables for people, a flat metric map for the gate.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::{Counts, Error};

/// Format version of the JSON report.
pub const REPORT_VERSION: u32 = 1;

/// Which direction of a metric is good.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Better {
    /// Precision, recall, F1, TPR: a drop beyond the tolerance is a regression.
    Higher,
    /// False-positive rate: any rise is a regression.
    Lower,
}

/// One gated number with the ids of the examples that count against it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Metric {
    /// Value in percent; `null` when undefined (e.g. precision with no predictions).
    pub value: Option<f64>,
    /// Which direction is good.
    pub better: Better,
    /// Denominator behind the value (spans, predictions or records).
    pub support: usize,
    /// Ids of the examples that count against this metric (a missed span or
    /// injection, a false detection), sorted. The baseline diff names the
    /// ids that are new here.
    pub failing: Vec<String>,
}

/// Precision/recall/F1 for one entity type under one matching mode.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Prf {
    /// Counts (tp counted on gold spans for recall and on predictions for
    /// precision under overlap matching; equal under exact matching).
    pub counts: Counts,
    /// Precision, percent.
    pub precision: Option<f64>,
    /// Recall, percent.
    pub recall: Option<f64>,
    /// F1, percent.
    pub f1: Option<f64>,
}

/// One row of the PII table.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct PiiTypeRow {
    /// Gold spans of this type.
    pub gold: usize,
    /// Predicted spans of this type.
    pub predicted: usize,
    /// Same type, same span.
    pub exact: Prf,
    /// Same type, spans intersect.
    pub overlap: Prf,
}

/// PII results: one row per entity type seen in gold or predictions, plus `ALL` (micro average).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct PiiReport {
    /// Number of PII records.
    pub records: usize,
    /// Rows keyed by entity type; `ALL` is the micro average.
    pub types: BTreeMap<String, PiiTypeRow>,
    /// Records without any gold span (hard negatives).
    #[serde(default)]
    pub negative_records: usize,
    /// Hard negatives on which the detector reported anything.
    #[serde(default)]
    pub negative_records_flagged: usize,
}

/// One slice of the injection table.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SliceRow {
    /// Records in the slice.
    pub records: usize,
    /// Records labeled injection.
    pub positives: usize,
    /// Records labeled benign.
    pub negatives: usize,
    /// Counts from the detector's own verdicts (flag or block = detected).
    pub counts: Counts,
    /// TPR (recall), percent.
    pub tpr: Option<f64>,
    /// FPR, percent.
    pub fpr: Option<f64>,
    /// Precision, percent.
    pub precision: Option<f64>,
    /// F1, percent.
    pub f1: Option<f64>,
    /// TPR at the score threshold that gives 1% FPR over all benign records.
    pub tpr_at_fpr1: Option<f64>,
    /// TPR at the score threshold that gives 5% FPR over all benign records.
    pub tpr_at_fpr5: Option<f64>,
}

/// Injection results per slice (`all`, `source=…`, `role=…`, `lang=…`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct InjectionReport {
    /// Number of injection records.
    pub records: usize,
    /// Score threshold (detected when strictly above) for 1% FPR; `null` = none needed.
    pub threshold_fpr1: Option<f32>,
    /// Score threshold for 5% FPR.
    pub threshold_fpr5: Option<f32>,
    /// Rows keyed by slice name.
    pub slices: BTreeMap<String, SliceRow>,
}

/// What one corpus file contributed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CorpusInfo {
    /// Path as given on the command line.
    pub path: String,
    /// SHA-256 of its bytes.
    pub sha256: String,
    /// PII records read.
    pub pii_records: usize,
    /// Injection records read.
    pub injection_records: usize,
}

/// A full evaluation report (also the baseline format).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Report {
    /// [`REPORT_VERSION`].
    pub version: u32,
    /// The corpora measured.
    pub corpora: Vec<CorpusInfo>,
    /// PII tables, when there were PII records.
    pub pii: Option<PiiReport>,
    /// Injection tables, when there were injection records.
    pub injection: Option<InjectionReport>,
    /// Flat metric map the baseline gate compares, e.g.
    /// `pii.exact.EMAIL.recall`, `injection.source=garak.fpr`, `injection.all.tpr@1%fpr`.
    pub metrics: BTreeMap<String, Metric>,
}

impl Report {
    /// Reads a report written by [`Report::to_json`].
    ///
    /// # Errors
    /// [`Error::Io`] or [`Error::Baseline`].
    pub fn load(path: &Path) -> Result<Report, Error> {
        let text = std::fs::read_to_string(path).map_err(|error| Error::Io {
            file: path.to_path_buf(),
            error,
        })?;
        let report: Report = serde_json::from_str(&text).map_err(|e| Error::Baseline {
            file: path.to_path_buf(),
            reason: e.to_string(),
        })?;
        if report.version != REPORT_VERSION {
            return Err(Error::Baseline {
                file: path.to_path_buf(),
                reason: format!(
                    "version {} (this warden writes {REPORT_VERSION})",
                    report.version
                ),
            });
        }
        Ok(report)
    }

    /// Pretty JSON with a trailing newline (stable key order, so baselines diff well in git).
    pub fn to_json(&self) -> String {
        let mut s = serde_json::to_string_pretty(self).unwrap_or_default();
        s.push('\n');
        s
    }

    /// Writes [`Report::to_json`] to `path`.
    ///
    /// # Errors
    /// [`Error::Io`].
    pub fn save(&self, path: &Path) -> Result<(), Error> {
        std::fs::write(path, self.to_json()).map_err(|error| Error::Io {
            file: path.to_path_buf(),
            error,
        })
    }

    /// Human-readable tables.
    pub fn render(&self) -> String {
        let mut out = String::new();
        for c in &self.corpora {
            let _ = writeln!(
                out,
                "corpus {}: {} PII, {} injection records",
                c.path, c.pii_records, c.injection_records
            );
        }
        if let Some(pii) = &self.pii {
            let _ = writeln!(out, "\nPII ({} records)   exact = same type and span, overlap = same type, spans intersect", pii.records);
            let _ = writeln!(
                out,
                "{:<18} {:>5} {:>5} | {:>6} {:>6} {:>6} | {:>6} {:>6} {:>6}",
                "type", "gold", "pred", "P", "R", "F1", "P~", "R~", "F1~"
            );
            let mut rows: Vec<_> = pii
                .types
                .iter()
                .filter(|(k, _)| k.as_str() != "ALL")
                .collect();
            rows.extend(pii.types.get_key_value("ALL"));
            for (ty, r) in rows {
                let _ = writeln!(
                    out,
                    "{:<18} {:>5} {:>5} | {} {} {} | {} {} {}",
                    ty,
                    r.gold,
                    r.predicted,
                    fmt_pct(r.exact.precision),
                    fmt_pct(r.exact.recall),
                    fmt_pct(r.exact.f1),
                    fmt_pct(r.overlap.precision),
                    fmt_pct(r.overlap.recall),
                    fmt_pct(r.overlap.f1)
                );
            }
            let _ = writeln!(
                out,
                "hard negatives (records without PII) with any finding: {} of {}",
                pii.negative_records_flagged, pii.negative_records
            );
        }
        if let Some(inj) = &self.injection {
            let _ = writeln!(
                out,
                "\nInjection ({} records)   verdict flag|block = detected; TPR@x% at score > {} (1%) / {} (5%) over all benign",
                inj.records,
                fmt_thr(inj.threshold_fpr1),
                fmt_thr(inj.threshold_fpr5)
            );
            let _ = writeln!(
                out,
                "{:<36} {:>5} {:>5} {:>5} | {:>6} {:>6} {:>6} {:>6} | {:>7} {:>7}",
                "slice", "n", "pos", "neg", "TPR", "FPR", "P", "F1", "TPR@1%", "TPR@5%"
            );
            let mut rows: Vec<_> = inj.slices.get_key_value("all").into_iter().collect();
            rows.extend(inj.slices.iter().filter(|(k, _)| k.as_str() != "all"));
            for (name, r) in rows {
                let _ = writeln!(
                    out,
                    "{:<36} {:>5} {:>5} {:>5} | {} {} {} {} | {:>7} {:>7}",
                    name,
                    r.records,
                    r.positives,
                    r.negatives,
                    fmt_pct(r.tpr),
                    fmt_pct(r.fpr),
                    fmt_pct(r.precision),
                    fmt_pct(r.f1),
                    fmt_pct(r.tpr_at_fpr1),
                    fmt_pct(r.tpr_at_fpr5)
                );
            }
        }
        out
    }
}

fn fmt_pct(v: Option<f64>) -> String {
    match v {
        Some(v) => format!("{v:>6.1}"),
        None => format!("{:>6}", "-"),
    }
}

fn fmt_thr(v: Option<f32>) -> String {
    match v {
        Some(v) => format!("{v:.3}"),
        None => "-inf".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn load_rejects_other_files_and_versions() {
        let dir = std::env::temp_dir().join(format!("warden-eval-report-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("b.json");
        let report = Report {
            version: REPORT_VERSION,
            corpora: vec![],
            pii: None,
            injection: None,
            metrics: BTreeMap::new(),
        };
        report.save(&path).unwrap();
        assert_eq!(Report::load(&path).unwrap(), report);
        std::fs::write(
            &path,
            report
                .to_json()
                .replace("\"version\": 1", "\"version\": 99"),
        )
        .unwrap();
        let err = Report::load(&path).unwrap_err().to_string();
        assert!(err.contains("version 99"), "{err}");
        std::fs::write(&path, "{\"pii\": 3}").unwrap();
        assert!(matches!(Report::load(&path), Err(Error::Baseline { .. })));
        assert!(matches!(
            Report::load(&dir.join("none.json")),
            Err(Error::Io { .. })
        ));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
