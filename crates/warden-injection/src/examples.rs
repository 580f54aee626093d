//! Built-in rule packs, loading from a directory, and the inline-example
//! checker shared by `cargo test` and `warden test-patterns`.

use std::path::Path;

use crate::detector::{Detector, Source};
use crate::error::Error;
use crate::rules::RulePack;

const BUILTIN: &[(&str, &str)] = &[
    (
        "injection/override.toml",
        include_str!("../../../patterns/injection/override.toml"),
    ),
    (
        "injection/roles.toml",
        include_str!("../../../patterns/injection/roles.toml"),
    ),
    (
        "injection/extraction.toml",
        include_str!("../../../patterns/injection/extraction.toml"),
    ),
    (
        "injection/persona.toml",
        include_str!("../../../patterns/injection/persona.toml"),
    ),
    (
        "injection/encoding.toml",
        include_str!("../../../patterns/injection/encoding.toml"),
    ),
    (
        "injection/documents.toml",
        include_str!("../../../patterns/injection/documents.toml"),
    ),
];

/// The default rule packs compiled into the binary, as `(path, toml)`.
pub fn builtin_sources() -> &'static [(&'static str, &'static str)] {
    BUILTIN
}

/// Parses the default rule packs.
///
/// # Errors
/// Only if an embedded pack is malformed (a build defect caught by tests).
pub fn builtin_packs() -> Result<Vec<RulePack>, Error> {
    BUILTIN
        .iter()
        .map(|(name, src)| RulePack::parse(src, name))
        .collect()
}

/// Loads every `*.toml` in `dir` (not recursive), sorted by name.
///
/// # Errors
/// Names the file that cannot be read or parsed.
pub fn load_dir(dir: &Path) -> Result<Vec<RulePack>, Error> {
    let shown = dir.display().to_string();
    let rd = std::fs::read_dir(dir).map_err(|e| Error::io(&shown, e.to_string()))?;
    let mut paths: Vec<_> = rd
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "toml"))
        .collect();
    paths.sort();
    paths
        .iter()
        .map(|p| {
            let name = p.display().to_string();
            let src = std::fs::read_to_string(p).map_err(|e| Error::io(&name, e.to_string()))?;
            RulePack::parse(&src, &name)
        })
        .collect()
}

/// One failed inline example.
#[derive(Debug, Clone)]
pub struct ExampleFailure {
    /// File the rule came from.
    pub origin: String,
    /// Rule id.
    pub rule: String,
    /// `true` for a positive example that did not fire, `false` for a
    /// negative example that fired (or a rule with too few examples).
    pub positive: bool,
    /// The example text (pack data, not user data).
    pub example: String,
    /// Rule ids that fired instead.
    pub found: Vec<String>,
}

/// Outcome of checking every inline example.
#[derive(Debug, Clone, Default)]
pub struct ExampleReport {
    /// Examples that behaved.
    pub passed: usize,
    /// Examples that did not.
    pub failures: Vec<ExampleFailure>,
}

/// Runs every rule's positive and negative examples through `detector`.
/// Positives must fire the rule; negatives must not. Each rule needs at
/// least 3 of each. Examples run as the rule's first listed source (user
/// when it lists none).
///
/// # Example
/// ```
/// let d = warden_injection::Detector::builtin().unwrap();
/// let packs = warden_injection::builtin_packs().unwrap();
/// let report = warden_injection::check_examples(&d, &packs);
/// assert!(report.failures.is_empty());
/// ```
pub fn check_examples(detector: &Detector, packs: &[RulePack]) -> ExampleReport {
    let mut report = ExampleReport::default();
    for pack in packs {
        for rule in &pack.rules {
            let source = rule.sources.first().copied().unwrap_or(Source::User);
            if rule.positive.len() < 3 || rule.negative.len() < 3 {
                report.failures.push(ExampleFailure {
                    origin: pack.origin.clone(),
                    rule: rule.id.clone(),
                    positive: rule.positive.len() < 3,
                    example: "(rule needs at least 3 positive and 3 negative examples)".into(),
                    found: Vec::new(),
                });
            }
            for (examples, positive) in [(&rule.positive, true), (&rule.negative, false)] {
                for ex in examples {
                    let r = detector.check(ex, source);
                    let fired = r.evidence.iter().any(|e| *e.rule == *rule.id);
                    if fired == positive {
                        report.passed += 1;
                    } else {
                        let mut found: Vec<String> =
                            r.evidence.iter().map(|e| e.rule.to_string()).collect();
                        found.dedup();
                        report.failures.push(ExampleFailure {
                            origin: pack.origin.clone(),
                            rule: rule.id.clone(),
                            positive,
                            example: ex.clone(),
                            found,
                        });
                    }
                }
            }
        }
    }
    report
}
