//! Running detectors over corpora and aggregating the outcomes into a [`Report`].

use std::collections::{BTreeMap, BTreeSet, HashMap};

use rayon::prelude::*;

use crate::metrics::{pct, threshold_at_fpr};
use crate::report::{
    Better, CorpusInfo, InjectionReport, Metric, PiiReport, PiiTypeRow, Prf, SliceRow,
    REPORT_VERSION,
};
use crate::{
    Corpus, Counts, Error, InjectionRecord, InjectionScorer, PiiDetector, PiiRecord, Record, Report,
};

/// The detectors to evaluate. A corpus record whose kind has no detector is an error.
#[derive(Clone, Copy, Default)]
pub struct Engines<'a> {
    /// Scanner for PII records.
    pub pii: Option<&'a dyn PiiDetector>,
    /// Scorer for injection records.
    pub injection: Option<&'a dyn InjectionScorer>,
}

/// Runs the detectors over every record (in parallel) and builds the report.
///
/// # Example
/// ```
/// use std::path::Path;
/// use warden_eval::{evaluate, Corpus, DetectedSpan, Engines, PiiDetector};
/// struct Digits;
/// impl PiiDetector for Digits {
///     fn detect(&self, text: &str) -> Vec<DetectedSpan> {
///         let start = text.find(|c: char| c.is_ascii_digit()).unwrap_or(0);
///         vec![DetectedSpan { entity: "NUM".into(), start, end: start + 3 }]
///     }
/// }
/// let src = r#"{"id":"r1","text":"no 123","spans":[{"start":3,"end":6,"type":"NUM"}]}"#;
/// let corpus = Corpus::parse(Path::new("c.jsonl"), src).unwrap();
/// let report = evaluate(&[corpus], Engines { pii: Some(&Digits), injection: None }).unwrap();
/// assert_eq!(report.metrics["pii.exact.NUM.recall"].value, Some(100.0));
/// ```
///
/// # Errors
/// [`Error::Record`] for an id used twice, [`Error::NoDetector`] when a record
/// kind has no detector.
pub fn evaluate(corpora: &[Corpus], engines: Engines<'_>) -> Result<Report, Error> {
    let mut seen: HashMap<&str, (usize, usize)> = HashMap::new();
    let mut pii: Vec<&PiiRecord> = Vec::new();
    let mut inj: Vec<&InjectionRecord> = Vec::new();
    let mut infos = Vec::with_capacity(corpora.len());
    for (ci, corpus) in corpora.iter().enumerate() {
        let mut info = CorpusInfo {
            path: corpus.path.display().to_string(),
            sha256: corpus.sha256.clone(),
            pii_records: 0,
            injection_records: 0,
        };
        for located in &corpus.records {
            let id = located.record.id();
            if let Some(&(fc, fl)) = seen.get(id) {
                return Err(Error::Record {
                    file: corpus.path.clone(),
                    line: located.line,
                    reason: format!(
                        "duplicate id {id:?} (first at {}:{fl})",
                        corpora[fc].path.display()
                    ),
                });
            }
            seen.insert(id, (ci, located.line));
            match &located.record {
                Record::Pii(r) => {
                    if engines.pii.is_none() {
                        return Err(Error::NoDetector {
                            file: corpus.path.clone(),
                            line: located.line,
                            kind: "pii",
                        });
                    }
                    info.pii_records += 1;
                    pii.push(r);
                }
                Record::Injection(r) => {
                    if engines.injection.is_none() {
                        return Err(Error::NoDetector {
                            file: corpus.path.clone(),
                            line: located.line,
                            kind: "injection",
                        });
                    }
                    info.injection_records += 1;
                    inj.push(r);
                }
            }
        }
        infos.push(info);
    }
    let mut metrics = BTreeMap::new();
    let pii_report = match engines.pii {
        Some(det) if !pii.is_empty() => Some(eval_pii(det, &pii, &mut metrics)),
        _ => None,
    };
    let inj_report = match engines.injection {
        Some(det) if !inj.is_empty() => Some(eval_injection(det, &inj, &mut metrics)),
        _ => None,
    };
    Ok(Report {
        version: REPORT_VERSION,
        corpora: infos,
        pii: pii_report,
        injection: inj_report,
        metrics,
    })
}

/// Per record and entity type: how many gold/predicted spans and how many matched.
#[derive(Default, Clone, Copy)]
struct TypeOutcome {
    gold: usize,
    pred: usize,
    exact: usize,
    overlap_gold: usize,
    overlap_pred: usize,
}

impl TypeOutcome {
    fn add(&mut self, o: &TypeOutcome) {
        self.gold += o.gold;
        self.pred += o.pred;
        self.exact += o.exact;
        self.overlap_gold += o.overlap_gold;
        self.overlap_pred += o.overlap_pred;
    }
}

fn match_record(det: &dyn PiiDetector, rec: &PiiRecord) -> BTreeMap<String, TypeOutcome> {
    let pred = det.detect(&rec.text);
    let mut out: BTreeMap<String, TypeOutcome> = BTreeMap::new();
    let overlaps = |a: (usize, usize), b: (usize, usize)| a.0 < b.1 && b.0 < a.1;
    for g in &rec.spans {
        let o = out.entry(g.entity.clone()).or_default();
        o.gold += 1;
        let same_type = pred.iter().filter(|p| p.entity == g.entity);
        let mut exact = false;
        let mut any = false;
        for p in same_type {
            exact |= p.start == g.start && p.end == g.end;
            any |= overlaps((p.start, p.end), (g.start, g.end));
        }
        o.exact += usize::from(exact);
        o.overlap_gold += usize::from(any);
    }
    for p in &pred {
        let o = out.entry(p.entity.clone()).or_default();
        o.pred += 1;
        let any = rec
            .spans
            .iter()
            .any(|g| g.entity == p.entity && overlaps((p.start, p.end), (g.start, g.end)));
        o.overlap_pred += usize::from(any);
    }
    out
}

fn prf(gold: usize, pred: usize, tp_gold: usize, tp_pred: usize) -> Prf {
    let precision = pct(tp_pred, pred);
    let recall = pct(tp_gold, gold);
    let f1 = match (precision, recall) {
        (Some(p), Some(r)) if p + r > 0.0 => Some((2.0 * p * r / (p + r) * 1e6).round() / 1e6),
        (Some(_), Some(_)) => Some(0.0),
        _ => None,
    };
    Prf {
        counts: Counts {
            tp: tp_gold,
            fp: pred - tp_pred,
            fn_: gold - tp_gold,
            tn: 0,
        },
        precision,
        recall,
        f1,
    }
}

fn eval_pii(
    det: &dyn PiiDetector,
    recs: &[&PiiRecord],
    metrics: &mut BTreeMap<String, Metric>,
) -> PiiReport {
    let outcomes: Vec<BTreeMap<String, TypeOutcome>> =
        recs.par_iter().map(|r| match_record(det, r)).collect();
    let mut totals: BTreeMap<String, TypeOutcome> = BTreeMap::new();
    // (type, mode, metric) -> failing ids
    let mut failing: BTreeMap<(String, &str, &str), BTreeSet<String>> = BTreeMap::new();
    for (rec, per_type) in recs.iter().zip(&outcomes) {
        let mut all = TypeOutcome::default();
        for (ty, o) in per_type {
            totals.entry(ty.clone()).or_default().add(o);
            all.add(o);
        }
        for (ty, o) in per_type
            .iter()
            .map(|(t, o)| (t.as_str(), *o))
            .chain(std::iter::once(("ALL", all)))
        {
            let mut fail = |mode: &'static str, metric: &'static str, bad: bool| {
                if bad {
                    failing
                        .entry((ty.to_string(), mode, metric))
                        .or_default()
                        .insert(rec.id.clone());
                }
            };
            fail("exact", "recall", o.exact < o.gold);
            fail("exact", "precision", o.exact < o.pred);
            fail("exact", "f1", o.exact < o.gold || o.exact < o.pred);
            fail("overlap", "recall", o.overlap_gold < o.gold);
            fail("overlap", "precision", o.overlap_pred < o.pred);
            fail(
                "overlap",
                "f1",
                o.overlap_gold < o.gold || o.overlap_pred < o.pred,
            );
        }
    }
    // Records without gold spans are hard negatives: any finding on one is a
    // false positive, gated like an injection FPR (it may not rise at all).
    let flagged_negatives: BTreeSet<String> = recs
        .iter()
        .zip(&outcomes)
        .filter(|(r, o)| r.spans.is_empty() && o.values().any(|t| t.pred > 0))
        .map(|(r, _)| r.id.clone())
        .collect();
    let negative_records = recs.iter().filter(|r| r.spans.is_empty()).count();
    if negative_records > 0 {
        metrics.insert(
            "pii.hard_negatives.fpr".into(),
            Metric {
                value: pct(flagged_negatives.len(), negative_records),
                better: Better::Lower,
                support: negative_records,
                failing: flagged_negatives.iter().cloned().collect(),
            },
        );
    }
    let mut all = TypeOutcome::default();
    for o in totals.values() {
        all.add(o);
    }
    totals.insert("ALL".into(), all);
    let mut types = BTreeMap::new();
    for (ty, o) in &totals {
        let row = PiiTypeRow {
            gold: o.gold,
            predicted: o.pred,
            exact: prf(o.gold, o.pred, o.exact, o.exact),
            overlap: prf(o.gold, o.pred, o.overlap_gold, o.overlap_pred),
        };
        for (mode, p) in [("exact", &row.exact), ("overlap", &row.overlap)] {
            for (name, value, support) in [
                ("precision", p.precision, o.pred),
                ("recall", p.recall, o.gold),
                ("f1", p.f1, o.gold + o.pred),
            ] {
                let ids = failing
                    .remove(&(ty.clone(), mode, name))
                    .unwrap_or_default();
                metrics.insert(
                    format!("pii.{mode}.{ty}.{name}"),
                    Metric {
                        value,
                        better: Better::Higher,
                        support,
                        failing: ids.into_iter().collect(),
                    },
                );
            }
        }
        types.insert(ty.clone(), row);
    }
    PiiReport {
        records: recs.len(),
        types,
        negative_records,
        negative_records_flagged: flagged_negatives.len(),
    }
}

fn slices_of(r: &InjectionRecord) -> Vec<String> {
    let mut s = vec!["all".to_string(), format!("role={}", r.role.as_str())];
    if let Some(src) = &r.source {
        s.push(format!("source={src}"));
    }
    if let Some(lang) = &r.lang {
        s.push(format!("lang={lang}"));
    }
    s.extend(r.tags.iter().map(|t| format!("tag={t}")));
    s
}

#[derive(Default)]
struct SliceAcc {
    row: SliceRow,
    fn_ids: BTreeSet<String>,
    fp_ids: BTreeSet<String>,
    miss1: BTreeSet<String>,
    miss5: BTreeSet<String>,
    hit1: usize,
    hit5: usize,
}

fn eval_injection(
    det: &dyn InjectionScorer,
    recs: &[&InjectionRecord],
    metrics: &mut BTreeMap<String, Metric>,
) -> InjectionReport {
    let scored: Vec<_> = recs
        .par_iter()
        .map(|r| det.score(&r.text, r.role))
        .collect();
    let negatives: Vec<f32> = recs
        .iter()
        .zip(&scored)
        .filter(|(r, _)| !r.label)
        .map(|(_, s)| s.score)
        .collect();
    let thr1 = threshold_at_fpr(&negatives, 0.01);
    let thr5 = threshold_at_fpr(&negatives, 0.05);
    let above = |score: f32, thr: Option<f32>| thr.is_none_or(|t| score.total_cmp(&t).is_gt());
    let mut acc: BTreeMap<String, SliceAcc> = BTreeMap::new();
    for (r, s) in recs.iter().zip(&scored) {
        for name in slices_of(r) {
            let a = acc.entry(name).or_default();
            a.row.records += 1;
            match (r.label, s.flagged) {
                (true, true) => a.row.counts.tp += 1,
                (true, false) => {
                    a.row.counts.fn_ += 1;
                    a.fn_ids.insert(r.id.clone());
                }
                (false, true) => {
                    a.row.counts.fp += 1;
                    a.fp_ids.insert(r.id.clone());
                }
                (false, false) => a.row.counts.tn += 1,
            }
            if r.label {
                a.row.positives += 1;
                if above(s.score, thr1) {
                    a.hit1 += 1;
                } else {
                    a.miss1.insert(r.id.clone());
                }
                if above(s.score, thr5) {
                    a.hit5 += 1;
                } else {
                    a.miss5.insert(r.id.clone());
                }
            } else {
                a.row.negatives += 1;
            }
        }
    }
    let mut slices = BTreeMap::new();
    for (name, a) in acc {
        let mut row = a.row;
        let c = row.counts;
        row.tpr = c.recall();
        row.fpr = c.fpr();
        row.precision = c.precision();
        row.f1 = c.f1();
        row.tpr_at_fpr1 = pct(a.hit1, row.positives);
        row.tpr_at_fpr5 = pct(a.hit5, row.positives);
        let both: Vec<String> = a.fn_ids.union(&a.fp_ids).cloned().collect();
        let entries = [
            (
                "tpr",
                row.tpr,
                Better::Higher,
                row.positives,
                a.fn_ids.iter().cloned().collect(),
            ),
            (
                "fpr",
                row.fpr,
                Better::Lower,
                row.negatives,
                a.fp_ids.iter().cloned().collect(),
            ),
            (
                "precision",
                row.precision,
                Better::Higher,
                c.tp + c.fp,
                a.fp_ids.iter().cloned().collect(),
            ),
            ("f1", row.f1, Better::Higher, row.records, both),
            (
                "tpr@1%fpr",
                row.tpr_at_fpr1,
                Better::Higher,
                row.positives,
                a.miss1.into_iter().collect(),
            ),
            (
                "tpr@5%fpr",
                row.tpr_at_fpr5,
                Better::Higher,
                row.positives,
                a.miss5.into_iter().collect(),
            ),
        ];
        for (metric, value, better, support, failing) in entries {
            if value.is_some() {
                metrics.insert(
                    format!("injection.{name}.{metric}"),
                    Metric {
                        value,
                        better,
                        support,
                        failing,
                    },
                );
            }
        }
        slices.insert(name, row);
    }
    InjectionReport {
        records: recs.len(),
        threshold_fpr1: thr1,
        threshold_fpr5: thr5,
        slices,
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::{compare, Cause, DetectedSpan, Role, Scored};

    /// Finds every occurrence of fixed literals, typed.
    struct Literals(Vec<(&'static str, &'static str)>);
    impl PiiDetector for Literals {
        fn detect(&self, text: &str) -> Vec<DetectedSpan> {
            let mut out = Vec::new();
            for (lit, ty) in &self.0 {
                for (i, _) in text.match_indices(lit) {
                    out.push(DetectedSpan {
                        entity: (*ty).into(),
                        start: i,
                        end: i + lit.len(),
                    });
                }
            }
            out
        }
    }

    /// Score = the number after "score=" in the text; flagged above 0.5.
    struct ScoreInText;
    impl InjectionScorer for ScoreInText {
        fn score(&self, text: &str, _role: Role) -> Scored {
            let score = text
                .split("score=")
                .nth(1)
                .and_then(|s| s.trim().parse().ok())
                .unwrap_or(0.0);
            Scored {
                score,
                flagged: score > 0.5,
            }
        }
    }

    const PII: &str = r#"{"id":"p1","text":"mail ann@x.io or call 555 1234","spans":[{"start":5,"end":13,"type":"EMAIL"},{"start":22,"end":30,"type":"PHONE"}]}
{"id":"p2","text":"Zoë: zoe@x.io","spans":[{"start":0,"end":3,"type":"PERSON"},{"start":5,"end":13,"type":"EMAIL"}]}
{"id":"p3","text":"order 555 1234","spans":[]}"#;

    fn pii_report(det: &Literals) -> Report {
        let corpus = Corpus::parse(Path::new("pii.jsonl"), PII).unwrap();
        evaluate(
            &[corpus],
            Engines {
                pii: Some(det),
                injection: None,
            },
        )
        .unwrap()
    }

    #[test]
    fn pii_exact_and_overlap() {
        // EMAIL exact twice; PHONE found one char short (overlap only) and
        // falsely in p3; PERSON never found.
        let det = Literals(vec![
            ("ann@x.io", "EMAIL"),
            ("zoe@x.io", "EMAIL"),
            ("555 123", "PHONE"),
        ]);
        let r = pii_report(&det);
        let m = |k: &str| r.metrics[k].value;
        assert_eq!(m("pii.exact.EMAIL.recall"), Some(100.0));
        assert_eq!(m("pii.exact.EMAIL.precision"), Some(100.0));
        assert_eq!(m("pii.exact.PHONE.recall"), Some(0.0));
        assert_eq!(m("pii.overlap.PHONE.recall"), Some(100.0));
        assert_eq!(m("pii.overlap.PHONE.precision"), Some(50.0));
        assert_eq!(m("pii.exact.PERSON.recall"), Some(0.0));
        assert_eq!(m("pii.exact.PERSON.precision"), None);
        assert_eq!(r.metrics["pii.overlap.PHONE.precision"].failing, vec!["p3"]);
        assert_eq!(r.metrics["pii.exact.PHONE.recall"].failing, vec!["p1"]);
        assert_eq!(r.metrics["pii.exact.PERSON.recall"].failing, vec!["p2"]);
        // ALL: 4 gold, 4 predicted, 2 exact.
        let all = &r.pii.as_ref().unwrap().types["ALL"];
        assert_eq!((all.gold, all.predicted, all.exact.counts.tp), (4, 4, 2));
        assert_eq!(m("pii.exact.ALL.f1"), Some(50.0));
        assert_eq!(m("pii.hard_negatives.fpr"), Some(100.0));
        assert_eq!(r.metrics["pii.hard_negatives.fpr"].failing, vec!["p3"]);
        let table = r.render();
        assert!(
            table.contains("PERSON") && !table.contains("ann@x.io"),
            "{table}"
        );
    }

    #[test]
    fn pii_type_must_match() {
        let det = Literals(vec![("ann@x.io", "URL")]);
        let r = pii_report(&det);
        assert_eq!(
            r.metrics["pii.overlap.EMAIL.recall"].failing,
            vec!["p1", "p2"]
        );
        assert_eq!(r.metrics["pii.overlap.URL.precision"].value, Some(0.0));
    }

    #[test]
    fn baseline_names_newly_failing_pii_ids() {
        let good = pii_report(&Literals(vec![
            ("ann@x.io", "EMAIL"),
            ("zoe@x.io", "EMAIL"),
        ]));
        let weak = pii_report(&Literals(vec![("ann@x.io", "EMAIL")]));
        let diff = compare(&good, &weak, 0.5);
        assert!(!diff.passed());
        let r = diff
            .regressions
            .iter()
            .find(|r| r.metric == "pii.exact.EMAIL.recall")
            .unwrap();
        assert_eq!(
            (r.cause, r.baseline, r.current),
            (Cause::Dropped, 100.0, Some(50.0))
        );
        assert_eq!(r.newly_failing, vec!["p2"]);
        assert!(diff.render(0.5).contains("newly failing (1): p2"));
        // The reverse direction is an improvement, not a regression.
        assert!(compare(&weak, &good, 0.5).passed());
        // A round trip through JSON compares equal.
        let json = good.to_json();
        let back: Report = serde_json::from_str(&json).unwrap();
        assert_eq!(back, good);
        assert!(compare(&back, &good, 0.0).passed());
    }

    const INJ: &str = r#"{"id":"a","text":"x score=0.9","label":1,"source":"s1","lang":"en","tags":["t1"]}
{"id":"b","text":"x score=0.7","label":1,"source":"s1","lang":"de"}
{"id":"c","text":"x score=0.3","label":1,"source":"s2","role":"document"}
{"id":"d","text":"x score=0.6","label":0,"source":"s2","role":"system"}
{"id":"e","text":"x score=0.2","label":0,"source":"s3"}
{"id":"f","text":"x score=0.1","label":0,"source":"s3"}"#;

    fn inj_report(src: &str) -> Report {
        let corpus = Corpus::parse(Path::new("inj.jsonl"), src).unwrap();
        evaluate(
            &[corpus],
            Engines {
                pii: None,
                injection: Some(&ScoreInText),
            },
        )
        .unwrap()
    }

    #[test]
    fn injection_slices_and_fixed_fpr() {
        let r = inj_report(INJ);
        let m = |k: &str| r.metrics.get(k).and_then(|m| m.value);
        assert_eq!(m("injection.all.tpr").map(|v| v.round()), Some(67.0));
        assert_eq!(m("injection.all.fpr").map(|v| v.round()), Some(33.0));
        assert_eq!(m("injection.all.precision").map(|v| v.round()), Some(67.0));
        assert_eq!(m("injection.source=s1.tpr"), Some(100.0));
        assert_eq!(m("injection.source=s1.fpr"), None, "no negatives, no FPR");
        assert_eq!(m("injection.role=system.fpr"), Some(100.0));
        assert_eq!(m("injection.lang=de.tpr"), Some(100.0));
        assert_eq!(m("injection.tag=t1.tpr"), Some(100.0));
        // 3 negatives: 1% and 5% FPR allow none above the threshold 0.6.
        let inj = r.injection.as_ref().unwrap();
        assert_eq!(inj.threshold_fpr1, Some(0.6));
        assert_eq!(m("injection.all.tpr@1%fpr").map(|v| v.round()), Some(67.0));
        assert_eq!(r.metrics["injection.all.tpr@1%fpr"].failing, vec!["c"]);
        assert_eq!(r.metrics["injection.all.fpr"].failing, vec!["d"]);
        assert!(r.render().contains("source=s2"));
    }

    #[test]
    fn any_fpr_rise_fails_the_gate() {
        let base = inj_report(INJ);
        let worse = inj_report(&INJ.replace("x score=0.2", "x score=0.55"));
        let diff = compare(&base, &worse, 50.0);
        let rose: Vec<_> = diff
            .regressions
            .iter()
            .filter(|r| r.cause == Cause::Rose)
            .collect();
        assert!(
            rose.iter()
                .any(|r| r.metric == "injection.all.fpr" && r.newly_failing == vec!["e"]),
            "{diff:?}"
        );
        assert!(rose.iter().any(|r| r.metric == "injection.source=s3.fpr"));
    }

    #[test]
    fn missing_metric_fails_closed() {
        let base = inj_report(INJ);
        let fewer =
            inj_report(&INJ.replace("\"source\":\"s1\",\"lang\":\"de\"", "\"source\":\"s1\""));
        let diff = compare(&base, &fewer, 0.5);
        assert!(diff
            .regressions
            .iter()
            .any(|r| r.metric == "injection.lang=de.tpr" && r.cause == Cause::Missing));
        assert_eq!(diff.changed_corpora, vec!["inj.jsonl"]);
    }

    #[test]
    fn duplicate_ids_and_missing_detectors_are_errors() {
        let a = Corpus::parse(Path::new("a.jsonl"), INJ).unwrap();
        let b = Corpus::parse(
            Path::new("b.jsonl"),
            "\n{\"id\":\"c\",\"text\":\"t\",\"label\":0}",
        )
        .unwrap();
        let err = evaluate(
            &[a.clone(), b],
            Engines {
                pii: None,
                injection: Some(&ScoreInText),
            },
        )
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            "b.jsonl:2: duplicate id \"c\" (first at a.jsonl:3)"
        );
        let err = evaluate(&[a], Engines::default()).unwrap_err();
        assert_eq!(
            err.to_string(),
            "a.jsonl:1: injection record but no injection detector is configured"
        );
    }
}
