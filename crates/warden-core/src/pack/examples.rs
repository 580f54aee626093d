//! The one examples checker, used by `cargo test` and `warden test-patterns`.

use std::fmt;

use super::Pack;
use crate::scan::Scanner;

/// Minimum positive and negative examples every rule must carry.
pub const MIN_EXAMPLES: usize = 3;

/// The outcome of running every inline example of some packs.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ExampleReport {
    /// Examples that behaved as written.
    pub passed: usize,
    /// Everything else, in pack and rule order.
    pub failures: Vec<ExampleFailure>,
}

impl ExampleReport {
    /// True when nothing failed.
    pub fn ok(&self) -> bool {
        self.failures.is_empty()
    }

    /// The closing line: `N passed, M failed`.
    pub fn summary(&self) -> String {
        format!("{} passed, {} failed", self.passed, self.failures.len())
    }
}

/// How an example failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum FailureKind {
    /// A positive example did not yield the rule's entity at the expected span.
    MissedPositive,
    /// A negative example yielded the rule's entity.
    FalsePositive,
    /// The rule has fewer than [`MIN_EXAMPLES`] positives or negatives.
    TooFewExamples,
    /// The rule is not active in the scanner (disabled, or its pack was not loaded).
    RuleInactive,
}

/// One failed example, with enough to find it and see what happened.
#[derive(Debug, Clone, PartialEq)]
pub struct ExampleFailure {
    /// Pack origin (path or `builtin:<path>`).
    pub file: String,
    /// 1-based line of the example (or of the rule, for rule-level failures).
    pub line: usize,
    /// Rule id.
    pub rule: String,
    /// Entity type the rule reports.
    pub entity: String,
    /// What went wrong.
    pub kind: FailureKind,
    /// The example text (pack data, never user input).
    pub text: String,
    /// Expected byte span, for positives.
    pub expected: Option<(usize, usize)>,
    /// What the scanner found instead: `(entity, rule, start, end)`.
    pub found: Vec<(String, String, usize, usize)>,
}

impl fmt::Display for ExampleFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}: rule {}: ", self.file, self.line, self.rule)?;
        match self.kind {
            FailureKind::MissedPositive => {
                let (s, e) = self.expected.unwrap_or((0, 0));
                let want = self.text.get(s..e).unwrap_or("");
                write!(
                    f,
                    "positive {:?}: expected {} at {s}..{e} ({want:?})",
                    self.text, self.entity
                )?;
            }
            FailureKind::FalsePositive => {
                write!(f, "negative {:?}: must not find {}", self.text, self.entity)?
            }
            FailureKind::TooFewExamples => {
                return write!(
                    f,
                    "needs at least {MIN_EXAMPLES} positive and {MIN_EXAMPLES} negative examples"
                )
            }
            FailureKind::RuleInactive => return write!(f, "rule is not active in this scanner"),
        }
        if self.found.is_empty() {
            write!(f, "; found nothing")
        } else {
            let found: Vec<String> = self
                .found
                .iter()
                .map(|(ent, rule, s, e)| {
                    format!(
                        "{ent} at {s}..{e} ({:?}, rule {rule})",
                        self.text.get(*s..*e).unwrap_or("")
                    )
                })
                .collect();
            write!(f, "; found {}", found.join(", "))
        }
    }
}

/// Run every inline example of `packs` through `scanner`.
///
/// A positive passes when the scan reports the rule's entity at exactly the
/// expected span; a negative passes when the scan reports no finding of the
/// rule's entity. Rules with fewer than [`MIN_EXAMPLES`] of either kind fail.
///
/// # Example
/// ```
/// use warden_core::{check_examples, Scanner};
/// let scanner = Scanner::builtin()?;
/// let report = check_examples(&scanner, scanner.packs());
/// assert!(report.ok(), "{:#?}", report.failures);
/// println!("{}", report.summary());
/// # Ok::<(), warden_core::Error>(())
/// ```
pub fn check_examples(scanner: &Scanner, packs: &[Pack]) -> ExampleReport {
    let mut report = ExampleReport::default();
    let active: std::collections::HashSet<&str> = scanner.rule_ids().collect();
    for pack in packs {
        for rule in pack.rules() {
            let fail = |kind, line, text: &str, expected, found| ExampleFailure {
                file: pack.origin().to_string(),
                line,
                rule: rule.id.clone(),
                entity: rule.entity.clone(),
                kind,
                text: text.to_string(),
                expected,
                found,
            };
            if !active.contains(rule.id.as_str()) {
                report.failures.push(fail(
                    FailureKind::RuleInactive,
                    rule.line,
                    "",
                    None,
                    Vec::new(),
                ));
                continue;
            }
            if rule.positive.len() < MIN_EXAMPLES || rule.negative.len() < MIN_EXAMPLES {
                report.failures.push(fail(
                    FailureKind::TooFewExamples,
                    rule.line,
                    "",
                    None,
                    Vec::new(),
                ));
            }
            for ex in &rule.positive {
                let found = scanner.scan_with_key(&ex.text, ex.key.as_deref());
                let hit = found
                    .iter()
                    .any(|f| *f.entity == *rule.entity && f.start == ex.start && f.end == ex.end);
                if hit {
                    report.passed += 1;
                } else {
                    let found = found
                        .iter()
                        .map(|f| (f.entity.to_string(), f.rule.to_string(), f.start, f.end))
                        .collect();
                    report.failures.push(fail(
                        FailureKind::MissedPositive,
                        ex.line,
                        &ex.text,
                        Some((ex.start, ex.end)),
                        found,
                    ));
                }
            }
            for neg in &rule.negative {
                let text = &neg.text;
                let found: Vec<_> = scanner
                    .scan_with_key(text, neg.key.as_deref())
                    .into_iter()
                    .filter(|f| *f.entity == *rule.entity)
                    .map(|f| (f.entity.to_string(), f.rule.to_string(), f.start, f.end))
                    .collect();
                if found.is_empty() {
                    report.passed += 1;
                } else {
                    report.failures.push(fail(
                        FailureKind::FalsePositive,
                        rule.line,
                        text,
                        None,
                        found,
                    ));
                }
            }
        }
    }
    report
}
