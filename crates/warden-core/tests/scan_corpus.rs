//! The scanner finds exactly the entities planted in a seeded prompt-like
//! corpus (the same corpus the criterion bench measures), and nothing else.

use std::collections::BTreeMap;
use std::time::Instant;

use warden_core::testdata::corpus;
use warden_core::Scanner;

fn count(scanner: &Scanner, docs: &[String]) -> BTreeMap<String, usize> {
    let mut found = BTreeMap::new();
    for d in docs {
        for f in scanner.scan(d) {
            *found.entry(f.entity.to_string()).or_insert(0) += 1;
        }
    }
    found
}

fn expected(c: &warden_core::testdata::Corpus) -> BTreeMap<String, usize> {
    c.expected
        .iter()
        .map(|(k, v)| (k.to_string(), *v))
        .collect()
}

#[test]
fn sparse_corpus_findings_match_planted_entities() {
    let c = corpus(7, 400_000, 400);
    let scanner = Scanner::builtin().unwrap();
    assert_eq!(count(&scanner, &c.docs), expected(&c));
}

#[test]
fn dense_corpus_findings_match_planted_entities() {
    let c = corpus(11, 200_000, 60);
    let scanner = Scanner::builtin().unwrap();
    assert_eq!(count(&scanner, &c.docs), expected(&c));
}

/// Rough single-thread throughput; run with
/// `cargo test --release -p warden-core --test scan_corpus -- --ignored --nocapture`.
#[test]
#[ignore]
fn throughput_smoke() {
    let scanner = Scanner::builtin().unwrap();
    for (name, bpe) in [("sparse", 400), ("dense", 60)] {
        let c = corpus(1, 8_000_000, bpe);
        let t = Instant::now();
        let mut n = 0;
        for _ in 0..3 {
            for d in &c.docs {
                n += scanner.scan(d).len();
            }
        }
        let secs = t.elapsed().as_secs_f64() / 3.0;
        println!(
            "{name}: {:.1} MB/s ({} findings/pass, {} planted)",
            c.bytes() as f64 / secs / 1e6,
            n / 3,
            c.entities()
        );
    }
}

/// Per-pack throughput, to see where time goes.
#[test]
#[ignore]
fn throughput_per_pack() {
    let c = corpus(1, 4_000_000, 400);
    for (path, src) in warden_core::builtin_pack_sources() {
        let pack = warden_core::Pack::parse(src, path).unwrap();
        let scanner = Scanner::builder().pack(pack).build().unwrap();
        let t = Instant::now();
        let mut n = 0;
        for d in &c.docs {
            n += scanner.scan(d).len();
        }
        let secs = t.elapsed().as_secs_f64();
        println!("{path}: {:.1} MB/s ({n})", c.bytes() as f64 / secs / 1e6);
    }
    let empty = Scanner::builder().build().unwrap();
    let t = Instant::now();
    for d in &c.docs {
        empty.scan(d);
    }
    println!(
        "no packs: {:.1} MB/s",
        c.bytes() as f64 / t.elapsed().as_secs_f64() / 1e6
    );
}
