//! Every occurrence of a detected value is redacted, not only the ones the
//! detector flagged: an SSN found next to the word "ssn" is just as
//! sensitive three lines later where no context word is near.

use std::borrow::Cow;

use aho_corasick::{AhoCorasick, MatchKind};

use crate::finding::{Finding, MIN_VALUE_LEN};
use crate::normalize::normalize;

/// Finds further occurrences of already detected values.
pub(crate) struct Repeats {
    ac: AhoCorasick,
    /// The finding each pattern came from (its entity and rule are reused).
    sources: Vec<Finding>,
}

impl Repeats {
    /// A searcher for the values behind `found` (pairs of text and the
    /// findings in it); `None` when there is nothing worth searching for.
    pub(crate) fn new<'a>(
        found: impl IntoIterator<Item = (&'a str, &'a [Finding])>,
    ) -> Option<Repeats> {
        let mut values: Vec<Cow<'a, str>> = Vec::new();
        let mut sources = Vec::new();
        let mut seen = std::collections::HashSet::new();
        for (text, findings) in found {
            for f in findings {
                let Some(value) = text.get(f.start..f.end) else {
                    continue;
                };
                // A value found obfuscated ("jane\u{200b}.doe@acme.io") is
                // searched for as it reads too: the same address typed
                // plainly elsewhere is the same address.
                let plain = match normalize(value).text() {
                    v if v == value => None,
                    v => Some(Cow::Owned(v.to_owned())),
                };
                for v in std::iter::once(Cow::Borrowed(value)).chain(plain) {
                    if v.len() >= MIN_VALUE_LEN && seen.insert(v.clone()) {
                        values.push(v);
                        sources.push(f.clone());
                    }
                }
            }
        }
        if values.is_empty() {
            return None;
        }
        // Patterns are values we just found, so building can only fail on
        // absurd sizes; then we simply do not extend.
        // Standard semantics so overlapping search can report every value at
        // a position: the longest one may be blocked by an existing finding
        // while a shorter one ("John" inside "John Smith") is not.
        let ac = AhoCorasick::builder()
            .match_kind(MatchKind::Standard)
            .build(values.iter().map(|v| v.as_bytes()))
            .ok()?;
        Some(Repeats { ac, sources })
    }

    /// Adds a finding for every occurrence in `text` of a known value.
    /// An occurrence that overlaps findings already in `findings` (or other
    /// occurrences) is merged with them into one finding over their union,
    /// named by the leftmost: redacting only one of two overlapping values
    /// would show the rest of the other, and a fragment redacted here but
    /// not elsewhere would be a new value left in clear. Keeps `findings`
    /// sorted by start.
    pub(crate) fn extend(&self, text: &str, findings: &mut Vec<Finding>) {
        let added: Vec<Finding> = self
            .ac
            .find_overlapping_iter(text)
            .filter(|m| text.is_char_boundary(m.start()) && text.is_char_boundary(m.end()))
            .map(|m| Finding {
                start: m.start(),
                end: m.end(),
                ..self.sources[m.pattern().as_usize()].clone()
            })
            .collect();
        if added.is_empty() {
            return;
        }
        // Leftmost first, the longest at a start, and at the same span the
        // finding already there before an occurrence (it keeps its name).
        let mut all: Vec<(Finding, bool)> = findings.drain(..).map(|f| (f, false)).collect();
        all.extend(added.into_iter().map(|f| (f, true)));
        all.sort_by_key(|(f, new)| (f.start, std::cmp::Reverse(f.end), *new));
        // Per finding kept: whether it took in an occurrence. Findings the
        // detector reported are left as they are among themselves.
        let mut took_new: Vec<bool> = Vec::with_capacity(all.len());
        for (f, new) in all {
            if let (Some(last), Some(group)) = (findings.last_mut(), took_new.last_mut()) {
                if f.start < last.end && (new || *group) {
                    last.end = last.end.max(f.end);
                    *group = true;
                    continue;
                }
            }
            findings.push(f);
            took_new.push(new);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn finding(entity: &str, start: usize, end: usize) -> Finding {
        Finding {
            entity: entity.into(),
            rule: "test".into(),
            start,
            end,
            score: 1.0,
            evidence: vec![],
            obfuscated: false,
        }
    }

    fn spans(findings: &[Finding]) -> Vec<(usize, usize, &str)> {
        findings
            .iter()
            .map(|f| (f.start, f.end, f.entity()))
            .collect()
    }

    #[test]
    fn an_occurrence_a_finding_partly_covers_merges_with_it() {
        let source = "Mr. John and John Smith";
        let found = [finding("PERSON", 4, 8), finding("PERSON", 13, 23)];
        let rep = Repeats::new([(source, &found[..])]).unwrap();
        // "John Smith" here runs into the URL finding.
        let text = "Mr. John Smithpostgres://u:p@h/db";
        let mut findings = vec![finding("URL", 9, 33)];
        rep.extend(text, &mut findings);
        assert_eq!(spans(&findings), [(4, 33, "PERSON")]);
    }

    #[test]
    fn an_occurrence_inside_a_finding_changes_nothing() {
        let source = "John Smith";
        let found = [finding("PERSON", 0, 10)];
        let rep = Repeats::new([(source, &found[..])]).unwrap();
        let text = "to John Smith and John Smith";
        let mut findings = vec![finding("NAME", 3, 13)];
        rep.extend(text, &mut findings);
        assert_eq!(spans(&findings), [(3, 13, "NAME"), (18, 28, "PERSON")]);
    }

    #[test]
    fn a_value_found_obfuscated_is_also_found_plain() {
        let source = "jane\u{200b}.doe@acme.io";
        let found = [finding("EMAIL", 0, source.len())];
        let rep = Repeats::new([(source, &found[..])]).unwrap();
        let mut findings = vec![];
        rep.extend("to: jane.doe@acme.io", &mut findings);
        assert_eq!(spans(&findings), [(4, 20, "EMAIL")]);
    }

    #[test]
    fn overlapping_occurrences_become_their_union() {
        let source = "1234 5678 and 5678 9999";
        let found = [finding("A", 0, 9), finding("B", 14, 23)];
        let rep = Repeats::new([(source, &found[..])]).unwrap();
        let mut findings = vec![];
        rep.extend("x 1234 5678 9999 y", &mut findings);
        assert_eq!(spans(&findings), [(2, 16, "A")]);
    }

    #[test]
    fn short_values_are_not_searched_for() {
        let found = [finding("PERSON", 0, 3)];
        assert!(Repeats::new([("Ann", &found[..])]).is_none());
    }
}
