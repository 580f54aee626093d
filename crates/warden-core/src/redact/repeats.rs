//! Every occurrence of a detected value is redacted, not only the ones the
//! detector flagged: an SSN found next to the word "ssn" is just as
//! sensitive three lines later where no context word is near.

use std::borrow::Cow;

use aho_corasick::{AhoCorasick, MatchKind};

use crate::finding::{leftovers, Finding, MIN_VALUE_LEN};
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

    /// Adds a finding for every occurrence in `text` of a known value that
    /// no finding in `findings` overlaps. Keeps `findings` sorted by start.
    pub(crate) fn extend(&self, text: &str, findings: &mut Vec<Finding>) {
        let mut spans: Vec<(usize, usize)> = findings.iter().map(|f| (f.start, f.end)).collect();
        spans.sort_unstable();
        // Running maximum of ends, so nested or overlapping input spans are
        // handled too: a match [s, e) overlaps some span iff the largest end
        // among spans starting before `e` is past `s`.
        let mut max_end = Vec::with_capacity(spans.len());
        let mut m = 0;
        for &(_, b) in &spans {
            m = m.max(b);
            max_end.push(m);
        }
        let overlaps = |s: usize, e: usize| {
            let idx = spans.partition_point(|&(a, _)| a < e);
            idx > 0 && max_end[idx - 1] > s
        };
        let mut candidates: Vec<(usize, usize, usize)> = self
            .ac
            .find_overlapping_iter(text)
            .map(|m| (m.start(), m.end(), m.pattern().as_usize()))
            .filter(|&(s, e, _)| text.is_char_boundary(s) && text.is_char_boundary(e))
            .collect();
        // Occurrences that overlap each other ("1234 5678" and "5678 9999"
        // in "1234 5678 9999") become one span over their union, named by
        // the leftmost (longest at a tie): keeping only one would show the
        // rest of the other.
        candidates.sort_unstable_by_key(|&(s, e, _)| (s, std::cmp::Reverse(e)));
        let mut merged: Vec<(usize, usize, usize)> = Vec::with_capacity(candidates.len());
        for (s, e, p) in candidates {
            match merged.last_mut() {
                Some(last) if last.1 > s => last.1 = last.1.max(e),
                _ => merged.push((s, e, p)),
            }
        }
        // Where a finding already covers part of an occurrence, the rest of
        // it is redacted on its own ("John" of "John Smith" when a URL
        // finding starts at "Smith").
        let mut added: Vec<Finding> = Vec::new();
        let mut pieces = Vec::new();
        for (s, e, p) in merged {
            pieces.clear();
            if overlaps(s, e) {
                let near = &spans[..spans.partition_point(|&(a, _)| a < e)];
                leftovers(text, (s, e), near.iter().copied(), &mut pieces);
            } else {
                pieces.push((s, e));
            }
            added.extend(pieces.iter().map(|&(start, end)| Finding {
                start,
                end,
                ..self.sources[p].clone()
            }));
        }
        if !added.is_empty() {
            findings.extend(added);
            findings.sort_by_key(|f| (f.start, f.end));
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
    fn a_shorter_value_is_used_where_the_longest_is_blocked() {
        let source = "Mr. John and John Smith";
        let found = [finding("PERSON", 4, 8), finding("PERSON", 13, 23)];
        let rep = Repeats::new([(source, &found[..])]).unwrap();
        // "John Smith" here runs into the URL finding; "John" does not.
        let text = "Mr. John Smithpostgres://u:p@h/db";
        let mut findings = vec![finding("URL", 9, 33)];
        rep.extend(text, &mut findings);
        assert_eq!(spans(&findings), [(4, 8, "PERSON"), (9, 33, "URL")]);
    }

    #[test]
    fn the_uncovered_rest_of_an_occurrence_is_redacted() {
        let source = "John Smith";
        let found = [finding("PERSON", 0, 10)];
        let rep = Repeats::new([(source, &found[..])]).unwrap();
        let text = "Mr. John Smithpostgres://u:p@h/db";
        let mut findings = vec![finding("URL", 9, 33)];
        rep.extend(text, &mut findings);
        assert_eq!(spans(&findings), [(4, 8, "PERSON"), (9, 33, "URL")]);
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
