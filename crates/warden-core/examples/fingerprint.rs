//! A digest of every finding of the scanner, for checking that a speed-up
//! changed nothing: entity, rule, spans, score, evidence and the obfuscation
//! flag of each finding on the seeded corpora, the eval corpora (plain and
//! as a JSON key's value) and the packs' inline examples.
//!
//! `cargo run --release -p warden-core --example fingerprint` prints one
//! line per group (text count, finding count and an FNV-1a digest of the
//! serialised findings); compare the lines before and after a change.
//! `fingerprint dump` prints every finding.

use warden_core::testdata::corpus;
use warden_core::Scanner;

fn jsonl_texts(file: &str) -> Vec<String> {
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/../../tests/corpora/");
    let src = std::fs::read_to_string(format!("{root}{file}")).unwrap_or_default();
    src.lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter_map(|v| v["text"].as_str().map(str::to_string))
        .collect()
}

fn groups() -> Vec<(&'static str, Vec<String>)> {
    let mut non_ascii = corpus(1, 1_000_000, 400).docs;
    for d in non_ascii.iter_mut() {
        d.push_str(" Merci \u{2014} Gr\u{fc}\u{df}e an Fran\u{e7}ois M\u{fc}ller, \u{201c}erledigt\u{201d}.");
    }
    let examples = warden_core::builtin_pack_sources()
        .iter()
        .map(|(path, src)| warden_core::Pack::parse(src, path).expect("builtin pack"))
        .flat_map(|p| {
            p.rules()
                .iter()
                .flat_map(|r| {
                    let pos = r.positive.iter().map(|e| e.text.clone());
                    pos.chain(r.negative.iter().map(|e| e.text.clone()))
                })
                .collect::<Vec<_>>()
        })
        .collect();
    vec![
        ("sparse", corpus(1, 2_000_000, 400).docs),
        ("dense", corpus(2, 1_000_000, 60).docs),
        ("non-ascii", non_ascii),
        ("pii", jsonl_texts("pii.jsonl")),
        ("pii-national", jsonl_texts("pii-national.jsonl")),
        ("injection", jsonl_texts("injection.jsonl")),
        ("examples", examples),
    ]
}

fn fnv(h: &mut u64, bytes: &[u8]) {
    for &b in bytes {
        *h = (*h ^ b as u64).wrapping_mul(0x0100_0000_01b3);
    }
}

fn main() {
    let dump = std::env::args().nth(1).as_deref() == Some("dump");
    let scanner = Scanner::builtin().expect("builtin scanner");
    for (name, texts) in groups() {
        for key in [None, Some("customer_ssn")] {
            let mut h = 0xcbf2_9ce4_8422_2325u64;
            let mut n = 0;
            for t in &texts {
                for f in scanner.scan_with_key(t, key) {
                    n += 1;
                    let line = serde_json::to_string(&f).expect("serialise finding");
                    fnv(&mut h, line.as_bytes());
                    if dump {
                        println!("{name} {key:?} {line}");
                    }
                }
            }
            if !dump {
                let k = key.map_or(String::new(), |k| format!(" (key {k})"));
                println!(
                    "{name}{k}: {} texts, {n} findings, digest {h:016x}",
                    texts.len()
                );
            }
        }
    }
}
