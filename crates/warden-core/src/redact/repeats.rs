//! Every occurrence of a detected value is redacted, not only the ones the
//! detector flagged: an SSN found next to the word "ssn" is just as
//! sensitive three lines later where no context word is near.

use aho_corasick::{AhoCorasick, MatchKind};

use crate::finding::Finding;

/// Values shorter than this are not searched for elsewhere: short values
/// ("Ann", "May") would redact unrelated words.
const MIN_REPEAT_LEN: usize = 4;

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
        let mut values: Vec<&'a str> = Vec::new();
        let mut sources = Vec::new();
        let mut seen = std::collections::HashSet::new();
        for (text, findings) in found {
            for f in findings {
                let Some(value) = text.get(f.start..f.end) else {
                    continue;
                };
                if value.len() >= MIN_REPEAT_LEN && seen.insert(value) {
                    values.push(value);
                    sources.push(f.clone());
                }
            }
        }
        if values.is_empty() {
            return None;
        }
        // Patterns are values we just found, so building can only fail on
        // absurd sizes; then we simply do not extend.
        let ac = AhoCorasick::builder()
            .match_kind(MatchKind::LeftmostLongest)
            .build(&values)
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
        let mut added = Vec::new();
        for m in self.ac.find_iter(text) {
            let (s, e) = (m.start(), m.end());
            if !text.is_char_boundary(s) || !text.is_char_boundary(e) || overlaps(s, e) {
                continue;
            }
            let src = &self.sources[m.pattern().as_usize()];
            added.push(Finding {
                start: s,
                end: e,
                ..src.clone()
            });
        }
        if !added.is_empty() {
            findings.extend(added);
            findings.sort_by_key(|f| (f.start, f.end));
        }
    }
}
