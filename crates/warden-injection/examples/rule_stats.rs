//! Per-rule hit counts over the training data, split by source and label:
//! how much recall a rule buys and what it costs on the benign slices.
//!
//! Usage: `cargo run --release -p warden-injection --example rule_stats -- [--rules DIR] [--data DIR] [--show RULE]`
//! (`--show` prints the first 120 characters of every benign row the rule fires on).

use std::collections::BTreeMap;
use std::path::PathBuf;

use warden_injection::{Detector, Source};

fn main() {
    if let Err(e) = run() {
        eprintln!("rule_stats: {e}");
        std::process::exit(2);
    }
}

fn run() -> Result<(), String> {
    let mut rules = PathBuf::from("patterns/injection");
    let mut data = PathBuf::from("data/injection");
    let mut show: Option<String> = None;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut value = || args.next().ok_or(format!("{a} needs a value"));
        match a.as_str() {
            "--rules" => rules = PathBuf::from(value()?),
            "--data" => data = PathBuf::from(value()?),
            "--show" => show = Some(value()?),
            other => return Err(format!("unknown argument {other}")),
        }
    }
    let det = Detector::from_dir(&rules)
        .map_err(|e| e.to_string())?
        .with_classifier(None);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&data)
        .map_err(|e| format!("{}: {e}", data.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "jsonl"))
        .collect();
    files.sort();
    // (rule, source, label) -> rows the rule fired on.
    let mut hits: BTreeMap<(String, String, bool), usize> = BTreeMap::new();
    let mut totals: BTreeMap<(String, bool), usize> = BTreeMap::new();
    for f in files {
        let src = std::fs::read_to_string(&f).map_err(|e| format!("{}: {e}", f.display()))?;
        for line in src.lines().filter(|l| !l.trim().is_empty()) {
            let v: serde_json::Value = serde_json::from_str(line).map_err(|e| e.to_string())?;
            let text = v["text"].as_str().unwrap_or_default();
            let label = v["label"].as_i64().unwrap_or(0) == 1;
            let source = v["source"].as_str().unwrap_or("unknown").to_string();
            let role = v["role"]
                .as_str()
                .and_then(|r| r.parse().ok())
                .unwrap_or(Source::User);
            *totals.entry((source.clone(), label)).or_default() += 1;
            let mut fired: Vec<String> = det
                .check(text, role)
                .evidence
                .iter()
                .map(|e| e.rule.to_string())
                .collect();
            fired.sort();
            fired.dedup();
            for r in fired {
                if !label && show.as_deref() == Some(r.as_str()) {
                    let head: String = text.chars().take(120).collect();
                    println!("{source}: {}", head.replace(['\n', '\r'], " "));
                }
                *hits.entry((r, source.clone(), label)).or_default() += 1;
            }
        }
    }
    let mut by_rule: BTreeMap<&str, (Vec<String>, Vec<String>)> = BTreeMap::new();
    for ((rule, source, label), n) in &hits {
        let e = by_rule.entry(rule).or_default();
        let total = totals.get(&(source.clone(), *label)).copied().unwrap_or(0);
        let cell = format!("{source}={n}/{total}");
        if *label {
            e.0.push(cell);
        } else {
            e.1.push(cell);
        }
    }
    for (rule, (pos, neg)) in by_rule {
        println!("{rule:<28} +[{}]  -[{}]", pos.join(" "), neg.join(" "));
    }
    Ok(())
}
