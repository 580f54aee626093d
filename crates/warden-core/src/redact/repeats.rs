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
        let seen: Vec<(usize, usize, usize)> = self
            .ac
            .find_overlapping_iter(text)
            .filter(|m| text.is_char_boundary(m.start()) && text.is_char_boundary(m.end()))
            .map(|m| (m.start(), m.end(), m.pattern().as_usize()))
            .collect();
        if seen.is_empty() {
            return;
        }
        // Spans as (start, end, is an occurrence, index into `old` or
        // pattern): a Finding is only made for an occurrence that is not
        // merged into one already there (most are the detected values
        // themselves, at their own spans).
        let mut order: Vec<(usize, usize, bool, usize)> = findings
            .iter()
            .enumerate()
            .map(|(i, f)| (f.start, f.end, false, i))
            .chain(seen.iter().map(|&(s, e, p)| (s, e, true, p)))
            .collect();
        let mut old: Vec<Option<Finding>> = findings.drain(..).map(Some).collect();
        // Leftmost first, the longest at a start, and at the same span the
        // finding already there before an occurrence (it keeps its name).
        order.sort_unstable_by_key(|&(s, e, new, _)| (s, std::cmp::Reverse(e), new));
        // Per finding kept: whether it took in an occurrence. Findings the
        // detector reported are left as they are among themselves.
        let mut took_new: Vec<bool> = Vec::with_capacity(order.len());
        for (start, end, new, i) in order {
            if let (Some(last), Some(group)) = (findings.last_mut(), took_new.last_mut()) {
                if start < last.end && (new || *group) {
                    last.end = last.end.max(end);
                    *group = true;
                    continue;
                }
            }
            let f = if new {
                Finding {
                    start,
                    end,
                    ..self.sources[i].clone()
                }
            } else {
                match old[i].take() {
                    Some(f) => f,
                    None => continue,
                }
            };
            findings.push(f);
            took_new.push(new);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    type Span = (&'static str, usize, usize);

    fn finding(&(entity, start, end): &Span) -> Finding {
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

    /// Values found in `source` (its findings `known`) are searched for in
    /// `text`, which already holds the findings `existing`.
    struct Case {
        source: &'static str,
        known: &'static [Span],
        text: &'static str,
        existing: &'static [Span],
        expected: &'static [Span],
    }

    const CASES: &[Case] = &[
        // "John Smith" here runs into a URL finding: both become one.
        Case {
            source: "Mr. John and John Smith",
            known: &[("PERSON", 4, 8), ("PERSON", 13, 23)],
            text: "Mr. John Smithpostgres://u:p@h/db",
            existing: &[("URL", 9, 33)],
            expected: &[("PERSON", 4, 33)],
        },
        // An occurrence inside a finding changes nothing; one elsewhere is added.
        Case {
            source: "John Smith",
            known: &[("PERSON", 0, 10)],
            text: "to John Smith and John Smith",
            existing: &[("NAME", 3, 13)],
            expected: &[("NAME", 3, 13), ("PERSON", 18, 28)],
        },
        // A value found obfuscated is found where it is typed plainly.
        Case {
            source: "jane\u{200b}.doe@acme.io",
            known: &[("EMAIL", 0, 19)],
            text: "to: jane.doe@acme.io",
            existing: &[],
            expected: &[("EMAIL", 4, 20)],
        },
        // Overlapping occurrences become their union, named by the leftmost.
        Case {
            source: "1234 5678 and 5678 9999",
            known: &[("A", 0, 9), ("B", 14, 23)],
            text: "x 1234 5678 9999 y",
            existing: &[],
            expected: &[("A", 2, 16)],
        },
    ];

    #[test]
    fn repeats_are_found_and_merged() {
        for case in CASES {
            let known: Vec<Finding> = case.known.iter().map(finding).collect();
            let rep = Repeats::new([(case.source, &known[..])]).unwrap();
            let mut findings: Vec<Finding> = case.existing.iter().map(finding).collect();
            rep.extend(case.text, &mut findings);
            let got: Vec<(&str, usize, usize)> = findings
                .iter()
                .map(|f| (f.entity(), f.start, f.end))
                .collect();
            assert_eq!(got, case.expected, "{}", case.text);
        }
    }

    #[test]
    fn short_values_are_not_searched_for() {
        let found = [finding(&("PERSON", 0, 3))];
        assert!(Repeats::new([("Ann", &found[..])]).is_none());
    }
}
