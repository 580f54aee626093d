//! Scan throughput of the full default packs (all PII and secret rules) on a
//! seeded, realistic prompt-like corpus: support tickets, chat turns, JSON,
//! code and CSV, with sparse (about one entity per 400 bytes) and dense
//! (about one per 60 bytes) PII, and the sparse one with non-ASCII prose
//! added to every document. Setup asserts that the scanner finds exactly
//! the planted entities, so a fast-but-wrong engine cannot look good.
//!
//! `cargo bench --bench scan -- --warm-up-time 1 --measurement-time 3`

// `criterion_group!` generates an undocumented public fn.
#![allow(missing_docs)]

use std::collections::BTreeMap;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use warden_core::testdata::{corpus, Corpus};
use warden_core::Scanner;

fn checked(scanner: &Scanner, c: &Corpus) {
    let mut found: BTreeMap<&'static str, usize> = BTreeMap::new();
    for d in &c.docs {
        for f in scanner.scan(d) {
            let key = c
                .expected
                .keys()
                .find(|k| **k == f.entity())
                .copied()
                .unwrap_or("UNEXPECTED");
            *found.entry(key).or_insert(0) += 1;
        }
    }
    assert_eq!(
        found, c.expected,
        "scanner findings differ from the planted entities"
    );
}

fn bench(cr: &mut Criterion) {
    let scanner = Scanner::builtin().expect("built-in packs compile");
    let mut group = cr.benchmark_group("scan");
    for (name, seed, bytes_per_entity) in [("sparse", 1, 400), ("dense", 2, 60)] {
        let c = corpus(seed, 4_000_000, bytes_per_entity);
        checked(&scanner, &c);
        group.throughput(Throughput::Bytes(c.bytes() as u64));
        group.bench_function(name, |b| {
            b.iter(|| c.docs.iter().map(|d| scanner.scan(d).len()).sum::<usize>())
        });
    }
    // The sparse corpus with non-ASCII prose in every document (accented
    // names, a dash, curly quotes), as real tickets have: what plain-ASCII
    // fast paths do not cover.
    let mut c = corpus(1, 4_000_000, 400);
    for d in c.docs.iter_mut() {
        d.push_str(" Merci \u{2014} Gr\u{fc}\u{df}e an Fran\u{e7}ois M\u{fc}ller, \u{201c}erledigt\u{201d}.");
    }
    checked(&scanner, &c);
    group.throughput(Throughput::Bytes(c.bytes() as u64));
    group.bench_function("sparse_non_ascii", |b| {
        b.iter(|| c.docs.iter().map(|d| scanner.scan(d).len()).sum::<usize>())
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
