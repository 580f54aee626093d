//! The `warden eval` gate, end to end through the real binary and the real
//! engines: the committed baseline is current, a weakened pack fails the gate
//! and names the newly failing ids, and bad input exits 2 naming file:line.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn corpus(name: &str) -> String {
    root()
        .join("tests/corpora")
        .join(name)
        .display()
        .to_string()
}

fn warden(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_warden"))
        .args(args)
        .current_dir(root())
        .output()
        .expect("run warden")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn copy_dir(from: &Path, to: &Path) {
    fs::create_dir_all(to).unwrap();
    for entry in fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let dest = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &dest);
        } else {
            fs::copy(entry.path(), dest).unwrap();
        }
    }
}

/// Ids of the records in a corpus whose gold spans include `entity`, and one
/// value of that type (to check the output never echoes it).
fn ids_with(corpus_path: &str, entity: &str) -> (Vec<String>, String) {
    let mut ids = Vec::new();
    let mut value = String::new();
    for line in fs::read_to_string(root().join(corpus_path))
        .unwrap()
        .lines()
    {
        let rec: serde_json::Value = serde_json::from_str(line).unwrap();
        let text: Vec<char> = rec["text"].as_str().unwrap().chars().collect();
        for span in rec["spans"].as_array().unwrap() {
            if span["type"] == entity {
                ids.push(rec["id"].as_str().unwrap().to_string());
                let (s, e) = (
                    span["start"].as_u64().unwrap() as usize,
                    span["end"].as_u64().unwrap() as usize,
                );
                value = text[s..e].iter().collect();
            }
        }
    }
    (ids, value)
}

/// Lists the ids printed after "newly failing (N):" under the given regression line.
fn newly_failing(stdout: &str, metric: &str) -> Vec<String> {
    let mut lines = stdout.lines();
    while let Some(l) = lines.next() {
        if l.starts_with(&format!("REGRESSION {metric}:")) {
            let next = lines.next().unwrap_or_default();
            let ids = next
                .split_once("): ")
                .map(|(_, ids)| ids)
                .unwrap_or_default();
            return ids
                .split(", ")
                .filter(|s| !s.is_empty())
                .map(str::to_string)
                .collect();
        }
    }
    Vec::new()
}

#[test]
fn committed_baseline_is_current() {
    let out = warden(&[
        "eval",
        "--corpus",
        &corpus("pii.jsonl"),
        "--corpus",
        &corpus("pii-national.jsonl"),
        "--corpus",
        &corpus("injection.jsonl"),
        "--corpus",
        &corpus("injection-multilingual.jsonl"),
        "--corpus",
        &corpus("injection-probes.jsonl"),
        "--baseline",
        &corpus("baseline.json"),
    ]);
    let stdout = text(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{stdout}\n{}",
        text(&out.stderr)
    );
    assert!(stdout.contains("baseline gate: PASS"), "{stdout}");
}

#[test]
fn weakened_pii_pack_fails_the_gate_and_names_ids() {
    let tmp = tempfile::tempdir().unwrap();
    let full = tmp.path().join("full");
    copy_dir(&root().join("patterns"), &full);
    let weak = tmp.path().join("weak");
    copy_dir(&full, &weak);
    fs::remove_file(weak.join("pii/email.toml")).expect("the email pack exists");
    let baseline = tmp.path().join("baseline.json");
    let pii = corpus("pii.jsonl");
    let b = baseline.display().to_string();

    let out = warden(&[
        "eval",
        "--corpus",
        &pii,
        "--packs",
        &full.display().to_string(),
        "--baseline",
        &b,
        "--update-baseline",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    // Same packs again: passes.
    let out = warden(&[
        "eval",
        "--corpus",
        &pii,
        "--packs",
        &full.display().to_string(),
        "--baseline",
        &b,
    ]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}{}",
        text(&out.stdout),
        text(&out.stderr)
    );

    let out = warden(&[
        "eval",
        "--corpus",
        &pii,
        "--packs",
        &weak.display().to_string(),
        "--baseline",
        &b,
    ]);
    let stdout = text(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(1),
        "{stdout}\n{}",
        text(&out.stderr)
    );
    assert!(stdout.contains("baseline gate: FAIL"), "{stdout}");
    let named = newly_failing(&stdout, "pii.overlap.EMAIL.recall");
    let (with_email, a_value) = ids_with(&pii, "EMAIL");
    assert!(!named.is_empty(), "no ids named:\n{stdout}");
    for id in &named {
        assert!(with_email.contains(id), "{id} has no EMAIL span");
    }
    assert!(!stdout.contains(&a_value), "output echoes a corpus value");
}

#[test]
fn weakened_injection_rules_fail_the_gate_and_name_ids() {
    let tmp = tempfile::tempdir().unwrap();
    let full = tmp.path().join("full");
    copy_dir(&root().join("patterns"), &full);
    let weak = tmp.path().join("weak");
    copy_dir(&full, &weak);
    // Drop every rule file; the learned tier (model.bin) stays.
    for entry in fs::read_dir(weak.join("injection")).unwrap() {
        let p = entry.unwrap().path();
        if p.extension().is_some_and(|e| e == "toml") {
            fs::remove_file(p).unwrap();
        }
    }
    let ml = corpus("injection-multilingual.jsonl");
    let b = tmp.path().join("baseline.json").display().to_string();
    let out = warden(&[
        "eval",
        "--corpus",
        &ml,
        "--packs",
        &full.display().to_string(),
        "--baseline",
        &b,
        "--update-baseline",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let out = warden(&[
        "eval",
        "--corpus",
        &ml,
        "--packs",
        &weak.display().to_string(),
        "--baseline",
        &b,
    ]);
    let stdout = text(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(1),
        "{stdout}\n{}",
        text(&out.stderr)
    );
    let named = newly_failing(&stdout, "injection.all.tpr");
    assert!(!named.is_empty(), "{stdout}");
    assert!(
        named
            .iter()
            .all(|id| id.starts_with("ml:") || id.starts_with("obf:")),
        "{named:?}"
    );
}

#[test]
fn modified_baseline_fails_on_drop_and_on_fpr_rise() {
    let tmp = tempfile::tempdir().unwrap();
    let ml = corpus("injection-multilingual.jsonl");
    let b = tmp.path().join("baseline.json");
    let bs = b.display().to_string();
    let out = warden(&[
        "eval",
        "--corpus",
        &ml,
        "--baseline",
        &bs,
        "--update-baseline",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let mut report: serde_json::Value =
        serde_json::from_str(&fs::read_to_string(&b).unwrap()).unwrap();
    let metrics = report["metrics"].as_object_mut().unwrap();
    // A baseline 0.6 points better than today is a drop of 0.6 > 0.5 ...
    let tpr = metrics["injection.all.tpr"]["value"].as_f64().unwrap();
    if tpr <= 99.4 {
        metrics.get_mut("injection.all.tpr").unwrap()["value"] = serde_json::json!(tpr + 0.6);
    }
    // ... and a baseline FPR below today's is a rise.
    let fpr = metrics["injection.all.fpr"]["value"].as_f64().unwrap();
    metrics.get_mut("injection.all.fpr").unwrap()["value"] = serde_json::json!(fpr - 0.01);
    fs::write(&b, serde_json::to_string(&report).unwrap()).unwrap();
    let out = warden(&["eval", "--corpus", &ml, "--baseline", &bs]);
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(
        stdout.contains("REGRESSION injection.all.fpr:")
            && stdout.contains("false-positive rate rose"),
        "{stdout}"
    );
    if tpr <= 99.4 {
        assert!(stdout.contains("REGRESSION injection.all.tpr:"), "{stdout}");
    }
    // A generous tolerance forgives the drop but never an FPR rise.
    let out = warden(&[
        "eval",
        "--corpus",
        &ml,
        "--baseline",
        &bs,
        "--max-drop",
        "5",
    ]);
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(
        !stdout.contains("REGRESSION injection.all.tpr:"),
        "{stdout}"
    );
}

#[test]
fn bad_input_exits_2_with_file_and_line() {
    let tmp = tempfile::tempdir().unwrap();
    let bad = tmp.path().join("bad.jsonl");
    fs::write(
        &bad,
        "{\"id\":\"ok\",\"text\":\"fine\",\"label\":0}\n{\"id\":\"x\",\"text\":\"card 4111 1111 1111 1111\",\"spans\":[{\"start\":5,\"end\":99,\"type\":\"CREDIT_CARD\"}]}\n",
    )
    .unwrap();
    let out = warden(&["eval", "--corpus", &bad.display().to_string()]);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains(&format!("{}:2:", bad.display())),
        "{stderr}"
    );
    assert!(!stderr.contains("4111"), "{stderr}");
    let out = warden(&[
        "eval",
        "--corpus",
        &tmp.path().join("missing.jsonl").display().to_string(),
    ]);
    assert_eq!(out.status.code(), Some(2));
    let out = warden(&[
        "eval",
        "--corpus",
        &corpus("injection-multilingual.jsonl"),
        "--baseline",
        &bad.display().to_string(),
    ]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stdout));
}
