//! The scanner finds exactly the entities planted in a seeded prompt-like
//! corpus (the same corpus the criterion bench measures), and nothing else.

use std::collections::BTreeMap;

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
