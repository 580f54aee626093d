//! The scan itself: anchors → windowed regex → validator → context → overlap.

use std::sync::Arc;

use regex_automata::dfa::Automaton;
use regex_automata::util::captures::Captures;
use regex_automata::{Anchored, Input};

use super::{Anchor, Dfa, Inner, Rule};
use crate::finding::{Checksum, Evidence, Finding, MIN_VALUE_LEN};
use crate::normalize::{normalize, Normalized};

/// Bytes that may separate digits inside one digit run, numbered from 1
/// (0: not a separator), so a run can count each kind as it goes.
pub(super) const RUN_SEP: [u8; 256] = {
    let mut t = [0u8; 256];
    let seps = b" -./()+:";
    let mut i = 0;
    while i < seps.len() {
        t[seps[i] as usize] = i as u8 + 1;
        i += 1;
    }
    t
};

const OTHER: u8 = 0;
const ALPHA: u8 = 1;
const DIGIT: u8 = 2;

/// Byte classes for the token pass.
const CLASS: [u8; 256] = {
    let mut t = [OTHER; 256];
    let mut b = 0;
    while b < 256 {
        let c = b as u8;
        if c.is_ascii_alphabetic() {
            t[b] = ALPHA;
        } else if c.is_ascii_digit() {
            t[b] = DIGIT;
        }
        b += 1;
    }
    t
};

/// Largest text scanned as a whole when only a JSON key supplies context.
const KEY_WINDOW: usize = 4096;

/// A finding in view coordinates, before mapping back to the original.
struct Raw {
    rule: usize,
    start: usize,
    end: usize,
    score: f32,
    evidence: Vec<Evidence>,
}

/// Per-scan state: findings so far and, per rule, the end of its last finding.
struct Scan<'a> {
    inner: &'a Inner,
    view: &'a str,
    text: &'a [u8],
    key: Option<String>,
    last_end: Vec<usize>,
    /// Per rule, capture slots reused across matches (made on first use).
    caps: Vec<Option<Captures>>,
    /// The part of `text` the regexes see: all of it, except while a
    /// `glued` rule runs on a value cut out of its word.
    cut: (usize, usize),
    /// Bit per byte of `text`, 64 to a word: an ASCII letter that starts
    /// a word. Classified once, read by the token pass and by every
    /// context window.
    word_starts: Vec<u64>,
    /// The same for ASCII digits that start a digit run.
    run_starts: Vec<u64>,
    out: Vec<Raw>,
}

pub(super) fn scan(inner: &Inner, text: &str, key: Option<&str>) -> Vec<Finding> {
    let view = normalize(text);
    let key = key.map(normalize_key);
    let raws = scan_view(inner, view.text(), key.clone());
    let mut found: Vec<Finding> = Vec::with_capacity(raws.len());
    push_mapped(inner, &view, raws, false, &mut found);
    if inner.config.decode {
        if let Some(dec) = view.decoded() {
            let raws = scan_view(inner, dec.text(), key);
            push_mapped(inner, &dec, raws, true, &mut found);
        }
    }
    if let Some(deny) = &inner.deny {
        let mut hits = Vec::new();
        deny.find(view.text().as_bytes(), &mut hits);
        for (entity, s, e) in hits {
            if !view.text().is_char_boundary(s) || !view.text().is_char_boundary(e) {
                continue;
            }
            let (start, end) = view.to_original(s, e);
            found.push(Finding {
                entity,
                rule: Arc::from("config.deny"),
                start,
                end,
                score: 1.0,
                evidence: vec![Evidence::DenyList],
                obfuscated: text.as_bytes().get(start..end) != view.text().as_bytes().get(s..e),
            });
        }
    }
    resolve_overlaps(text, found)
}

fn push_mapped(
    inner: &Inner,
    view: &Normalized<'_>,
    raws: Vec<Raw>,
    decoded_only: bool,
    out: &mut Vec<Finding>,
) {
    let original = view.original().as_bytes();
    let vt = view.text().as_bytes();
    for r in raws {
        let (start, end) = view.to_original(r.start, r.end);
        let obfuscated = original.get(start..end) != vt.get(r.start..r.end);
        // The decoded view repeats every plain finding; keep only what the
        // decoding revealed.
        if decoded_only && !obfuscated {
            continue;
        }
        let mut evidence = r.evidence;
        if obfuscated {
            evidence.extend(view.layers_in(r.start, r.end).into_iter().map(|l| {
                Evidence::Obfuscation {
                    layer: Arc::from(l),
                }
            }));
        }
        let rule = &inner.rules[r.rule];
        out.push(Finding {
            entity: rule.entity.clone(),
            rule: rule.id.clone(),
            start,
            end,
            score: r.score,
            evidence,
            obfuscated,
        });
    }
}

/// Keep the best of overlapping findings (higher score, then longer, then
/// earlier), return them sorted by start.
///
/// A finding that a better one only partly covers keeps the parts outside
/// it (see [`leftovers`]): dropping it whole would leave "John"
/// unredacted in "Mr. John Smithpostgres://…" when the URL wins from
/// "Smith" on.
fn resolve_overlaps(text: &str, mut found: Vec<Finding>) -> Vec<Finding> {
    if found.len() < 2 {
        return found;
    }
    found.sort_by(|a, b| {
        b.score
            .total_cmp(&a.score)
            .then((b.end - b.start).cmp(&(a.end - a.start)))
            .then(a.start.cmp(&b.start))
    });
    let mut kept: Vec<Finding> = Vec::with_capacity(found.len());
    // `kept_spans` stays sorted and disjoint, so ends are sorted too and the
    // spans a finding overlaps are one range found by two binary searches.
    let mut kept_spans: Vec<(usize, usize)> = Vec::with_capacity(found.len());
    let mut rest: Vec<(usize, usize)> = Vec::new();
    for f in found {
        let hi = kept_spans.partition_point(|&(s, _)| s < f.end);
        let lo = kept_spans.partition_point(|&(_, e)| e <= f.start);
        if lo >= hi {
            kept_spans.insert(hi, (f.start, f.end));
            kept.push(f);
            continue;
        }
        rest.clear();
        leftovers(
            text,
            (f.start, f.end),
            kept_spans[lo..hi].iter().copied(),
            &mut rest,
        );
        for &(s, e) in &rest {
            let i = kept_spans.partition_point(|&(ks, _)| ks < e);
            kept_spans.insert(i, (s, e));
            kept.push(Finding {
                start: s,
                end: e,
                ..f.clone()
            });
        }
    }
    kept.sort_by_key(|f| (f.start, f.end));
    kept
}

/// Appends to `out` the parts of `start..end` that no span of `covered`
/// (sorted and disjoint) covers, each trimmed to its letters and digits and
/// kept when at least [`MIN_VALUE_LEN`] bytes long.
fn leftovers(
    text: &str,
    (start, end): (usize, usize),
    covered: impl IntoIterator<Item = (usize, usize)>,
    out: &mut Vec<(usize, usize)>,
) {
    let mut keep = |s: usize, e: usize| {
        let not_word = |c: char| !c.is_alphanumeric();
        let Some(piece) = text.get(s..e) else { return };
        let tail = piece.trim_start_matches(not_word);
        let word = tail.trim_end_matches(not_word);
        let s = s + (piece.len() - tail.len());
        if word.len() >= MIN_VALUE_LEN {
            out.push((s, s + word.len()));
        }
    };
    let mut at = start;
    for (s, e) in covered {
        if e <= at || s >= end {
            continue;
        }
        if at < s {
            keep(at, s);
        }
        at = e;
    }
    if at < end {
        keep(at, end);
    }
}

/// Lower-case a JSON key and split it into words (`creditCard_number` →
/// ` credit card number `), so context words match it as whole words.
fn normalize_key(key: &str) -> String {
    let mut out = String::with_capacity(key.len() + 2);
    out.push(' ');
    let mut prev_lower = false;
    for c in key.chars() {
        if c.is_ascii_alphanumeric() {
            if c.is_ascii_uppercase() && prev_lower {
                out.push(' ');
            }
            prev_lower = c.is_ascii_lowercase() || c.is_ascii_digit();
            out.push(c.to_ascii_lowercase());
        } else {
            prev_lower = false;
            if !out.ends_with(' ') {
                out.push(' ');
            }
        }
    }
    if !out.ends_with(' ') {
        out.push(' ');
    }
    out
}

fn scan_view(inner: &Inner, text: &str, key: Option<String>) -> Vec<Raw> {
    let mut s = Scan {
        inner,
        view: text,
        text: text.as_bytes(),
        key,
        last_end: vec![0; inner.rules.len()],
        caps: Vec::new(),
        cut: (0, text.len()),
        word_starts: Vec::new(),
        run_starts: Vec::new(),
        // Sized for prose with a finding every few hundred bytes, so that
        // most scans never regrow it.
        out: Vec::with_capacity(text.len() / 256),
    };
    (s.word_starts, s.run_starts) = start_bitmaps(s.text);
    s.literals();
    s.tokens();
    s.glued_literals();
    s.key_driven();
    s.out
}

/// End of the run of ASCII letters starting at `i`, eight bytes at a time:
/// a byte loop mispredicts a branch at almost every word end.
#[inline]
fn alpha_run_end(text: &[u8], mut i: usize) -> usize {
    const LO: u64 = 0x0101_0101_0101_0101;
    const HI: u64 = 0x8080_8080_8080_8080;
    while let Some(chunk) = text.get(i..i + 8) {
        let mut buf = [0u8; 8];
        buf.copy_from_slice(chunk);
        let x = u64::from_le_bytes(buf);
        // ASCII letter iff (b | 0x20) is in b'a'..=b'z' and b < 0x80; with
        // the high bit clear, adding to one byte never carries into the next.
        let y = (x | (0x20 * LO)) & !HI;
        let ge_a = y.wrapping_add((0x80 - u64::from(b'a')) * LO);
        let ge_after_z = y.wrapping_add((0x80 - u64::from(b'z') - 1) * LO);
        let alpha = ge_a & !ge_after_z & !x & HI;
        let stop = !alpha & HI;
        if stop != 0 {
            return i + (stop.trailing_zeros() / 8) as usize;
        }
        i += 8;
    }
    while i < text.len() && CLASS[text[i] as usize] == ALPHA {
        i += 1;
    }
    i
}

/// The digit-run gates of one digit-anchored rule (see
/// [`DigitRun`](crate::pack::DigitRun)), packed so that the loop over the
/// rules for each run reads one small struct per rule.
#[derive(Debug, Clone, Copy)]
pub(super) struct DigitGate {
    pub(super) rule: usize,
    pub(super) min_digits: usize,
    /// `usize::MAX` when the rule sets no maximum.
    max_digits: usize,
    /// Bit per digit the run may start with (the run starts with a digit,
    /// so the other characters of `starts` never matter).
    starts: u16,
    /// The required characters; `requires_min` 0 when there are none.
    requires: super::ByteSet,
    /// Bit per separator kind (see `RUN_SEP`) among the required characters;
    /// required characters that are not separators (kind 0) are never
    /// inside a run, so they have no bit.
    requires_kinds: u16,
    requires_min: usize,
    letters_before: usize,
    letters_after: usize,
    min_word: usize,
    /// Bit per separator kind the run may hold (all by default).
    separators: u16,
    letters_touch: bool,
    /// The rule is `glued` (see [`Scan::try_glued_run`]).
    glued: bool,
}

impl DigitGate {
    pub(super) fn new(rule: usize, prefilter: &crate::pack::Prefilter) -> DigitGate {
        let spec = prefilter.digits.as_ref();
        let (min_digits, max_digits, requires, starts, letters, requires_min, min_word) = spec
            .map_or((0, 0, "", "", (0, 0), 1, 0), |d| {
                (
                    d.min,
                    d.max,
                    d.requires.as_str(),
                    d.starts.as_str(),
                    (d.letters_before, d.letters_after),
                    d.requires_min,
                    d.min_word,
                )
            });
        let separators = spec
            .and_then(|d| d.separators.as_deref())
            .map_or(u16::MAX, |seps| {
                seps.bytes()
                    .fold(0u16, |m, b| m | 1 << RUN_SEP[usize::from(b)])
            });
        let digit_bits = |chars: &str| {
            chars
                .bytes()
                .filter(u8::is_ascii_digit)
                .fold(0u16, |m, b| m | 1 << (b - b'0'))
        };
        DigitGate {
            rule,
            min_digits,
            max_digits: if max_digits == 0 {
                usize::MAX
            } else {
                max_digits
            },
            starts: if starts.is_empty() {
                0x3ff
            } else {
                digit_bits(starts)
            },
            requires: super::ByteSet::of(requires),
            requires_kinds: requires
                .bytes()
                .fold(0u16, |m, b| m | 1 << RUN_SEP[usize::from(b)])
                & !1,
            requires_min: if requires.is_empty() {
                0
            } else {
                requires_min.max(1)
            },
            letters_before: letters.0,
            letters_after: letters.1,
            min_word,
            separators,
            letters_touch: spec.is_some_and(|d| d.letters_touch),
            glued: prefilter.glued,
        }
    }

    /// Could the rule match around the digit run `start..end` with
    /// `digits` digits and, per separator kind, `seps` separators inside?
    #[inline]
    fn admits(&self, text: &[u8], start: usize, end: usize, seps: &[u32; 9], kinds: u16) -> bool {
        if self.starts & 1 << (text[start] - b'0') == 0 || kinds & !self.separators != 0 {
            return false;
        }
        if self.requires_min > 0 && !self.requires_met(text, start, end, seps) {
            return false;
        }
        if self.min_word > 0
            && ((start > 0 && is_word(text[start - 1]))
                || !text
                    .get(start..start + self.min_word)
                    .is_some_and(|w| w.iter().all(|&b| is_word(b))))
        {
            return false;
        }
        if self.letters_before | self.letters_after == 0 {
            return true;
        }
        // Most runs follow or precede a space and a lower-case word: one
        // test each before the counting.
        let touch = self.letters_touch;
        (self.letters_before == 0 || upper_touches(text, start.checked_sub(1), -1, touch))
            && (self.letters_after == 0 || upper_touches(text, Some(end), 1, touch))
            && self.letters_ok(text, start, end)
    }

    /// The upper-case letters before and after the run (few rules ask, so
    /// this stays out of line).
    #[inline(never)]
    fn letters_ok(&self, text: &[u8], start: usize, end: usize) -> bool {
        let touch = self.letters_touch;
        (self.letters_before == 0 || upper_before(text, start, touch) >= self.letters_before)
            && (self.letters_after == 0 || upper_after(text, end, touch) >= self.letters_after)
    }

    /// Enough of the required characters in the run? Bytes just around the
    /// run count too (`::ffff:192.0.2.1`, `fe80::`), but are only looked at
    /// when one touches the run.
    #[inline]
    fn requires_met(&self, text: &[u8], start: usize, end: usize, seps: &[u32; 9]) -> bool {
        let mut kinds = self.requires_kinds;
        let mut inside = 0usize;
        while kinds != 0 {
            inside += seps[kinds.trailing_zeros() as usize] as usize;
            kinds &= kinds - 1;
        }
        if inside >= self.requires_min {
            return true;
        }
        let touches = (start > 0 && self.requires.contains(text[start - 1]))
            || (end < text.len() && self.requires.contains(text[end]));
        touches
            && text[start.saturating_sub(8)..(end + 2).min(text.len())]
                .iter()
                .filter(|&&b| self.requires.contains(b))
                .take(self.requires_min)
                .count()
                >= self.requires_min
    }
}

/// Is the byte at `at` an ASCII upper-case letter, or (unless `touch`) a
/// space or dash with one next to it (one step further in direction `step`)?
#[inline]
fn upper_touches(text: &[u8], at: Option<usize>, step: isize, touch: bool) -> bool {
    let byte = |i: Option<usize>| i.and_then(|i| text.get(i)).copied();
    match byte(at) {
        Some(b) if b.is_ascii_uppercase() => true,
        Some(b' ' | b'-') if !touch => byte(at.and_then(|i| i.checked_add_signed(step)))
            .is_some_and(|b| b.is_ascii_uppercase()),
        _ => false,
    }
}

/// How many ASCII upper-case letters (up to 8) end at `at`, directly or
/// (unless `touch`) before one space or dash ("AB 12 34 56 C", "X-1234567-L").
#[inline]
fn upper_before(text: &[u8], at: usize, touch: bool) -> usize {
    let mut i = at;
    if !touch && i > 0 && matches!(text[i - 1], b' ' | b'-') {
        i -= 1;
    }
    let mut n = 0;
    // Most runs follow a space, a digit or a lower-case letter: one test.
    while n < 8 && i > n && text[i - n - 1].is_ascii_uppercase() {
        n += 1;
    }
    n
}

/// How many ASCII upper-case letters (up to 2) start at `at`, directly or
/// (unless `touch`) after one space or dash ("12345678Z", "87654321-X").
#[inline]
fn upper_after(text: &[u8], at: usize, touch: bool) -> usize {
    let mut i = at;
    if !touch && matches!(text.get(i), Some(b' ' | b'-')) {
        i += 1;
    }
    let mut n = 0;
    while n < 2 && text.get(i + n).is_some_and(u8::is_ascii_uppercase) {
        n += 1;
    }
    n
}

/// Bit per byte, 64 to a word: the ASCII letters that start a word (no
/// ASCII letter or digit before them) and the ASCII digits that start a
/// digit run.
fn start_bitmaps(text: &[u8]) -> (Vec<u64>, Vec<u64>) {
    let blocks = text.len().div_ceil(64);
    let mut words = Vec::with_capacity(blocks);
    let mut runs = Vec::with_capacity(blocks);
    let (mut prev_alnum, mut prev_digit) = (0u64, 0u64);
    for block in text.chunks(64) {
        let (alpha, digit) = block_masks(block);
        let alnum = alpha | digit;
        words.push(alpha & !((alnum << 1) | prev_alnum));
        runs.push(digit & !((digit << 1) | prev_digit));
        prev_alnum = alnum >> 63;
        prev_digit = digit >> 63;
    }
    (words, runs)
}

/// Call `f` with every set bit of `bits` (see [`start_bitmaps`]) in `lo..hi`.
#[inline]
fn for_bits_in(bits: &[u64], lo: usize, hi: usize, mut f: impl FnMut(usize)) {
    let mut k = lo / 64;
    while k * 64 < hi {
        let mut w = bits[k];
        if k == lo / 64 {
            w &= u64::MAX << (lo % 64);
        }
        if hi - k * 64 < 64 {
            w &= (1u64 << (hi - k * 64)) - 1;
        }
        while w != 0 {
            f(k * 64 + w.trailing_zeros() as usize);
            w &= w - 1;
        }
        k += 1;
    }
}

/// Bit masks of the ASCII letters and the ASCII digits among (up to) 64
/// bytes: bit `i` is byte `i`.
#[inline]
fn block_masks(block: &[u8]) -> (u64, u64) {
    let mut buf = [0u8; 64];
    let block: &[u8; 64] = match block.try_into() {
        Ok(full) => full,
        Err(_) => {
            buf[..block.len()].copy_from_slice(block);
            &buf
        }
    };
    // Written as a byte-wise compare into arrays so that the compiler
    // vectorises it (a shift-or per byte does not), then packed eight
    // high bits at a time.
    let mut alpha = [0u8; 64];
    let mut digit = [0u8; 64];
    for i in 0..64 {
        let b = block[i];
        alpha[i] = u8::from((b | 0x20).wrapping_sub(b'a') < 26) << 7;
        digit[i] = u8::from(b.wrapping_sub(b'0') < 10) << 7;
    }
    (pack_high_bits(&alpha), pack_high_bits(&digit))
}

/// The high bit of each of 64 bytes, bit `i` from byte `i`.
#[inline]
fn pack_high_bits(m: &[u8; 64]) -> u64 {
    let mut r = 0u64;
    for (c, chunk) in m.chunks_exact(8).enumerate() {
        let mut b = [0u8; 8];
        b.copy_from_slice(chunk);
        let x = u64::from_le_bytes(b) & 0x8080_8080_8080_8080;
        r |= (x.wrapping_mul(0x0002_0408_1020_4081) >> 56) << (8 * c);
    }
    r
}

fn is_word(b: u8) -> bool {
    b.is_ascii_alphanumeric()
}

impl Scan<'_> {
    /// Literal anchors: one-byte ones by memchr, the rest by Aho-Corasick,
    /// merged in text order (a rule's anchors must come in order).
    fn literals(&mut self) {
        let inner = self.inner;
        let text = self.text;
        let single = &inner.single_bytes;
        let mut bytes = match single.as_slice() {
            [] => None,
            [a] => Some(memchr::memchr3_iter(a.0, a.0, a.0, text)),
            [a, b] => Some(memchr::memchr3_iter(a.0, b.0, b.0, text)),
            [a, b, c, ..] => Some(memchr::memchr3_iter(a.0, b.0, c.0, text)),
        }
        .into_iter()
        .flatten()
        .peekable();
        let mut multi = inner
            .literals
            .as_ref()
            .map(|ac| ac.find_iter(text))
            .into_iter()
            .flatten()
            .peekable();
        loop {
            let (start, end, targets) = match (bytes.peek(), multi.peek()) {
                (Some(&i), m) if m.is_none_or(|m| i < m.start()) => {
                    bytes.next();
                    let t = single.iter().find(|s| s.0 == text[i]).map(|s| &s.1);
                    (i, i + 1, t)
                }
                (_, Some(_)) => {
                    let Some(m) = multi.next() else { break };
                    (
                        m.start(),
                        m.end(),
                        inner.lit_targets.get(m.pattern().as_usize()),
                    )
                }
                _ => break,
            };
            for t in targets.into_iter().flatten() {
                if t.word {
                    let before_ok = start == 0 || !is_word(text[start - 1]);
                    let after_ok = end == text.len() || !is_word(text[end]);
                    if !(before_ok && after_ok) {
                        continue;
                    }
                }
                if self.inner.rules[t.rule].glued {
                    self.try_glued_literal(t.rule, start, end);
                } else {
                    self.try_rule(t.rule, start, end);
                }
            }
        }
    }

    /// Literals of `glued` rules inside words (`acme.ioghp_…`; at word
    /// starts the word dictionary tried them): each rule runs on the text
    /// cut at the literal.
    fn glued_literals(&mut self) {
        let Some((ac, targets)) = &self.inner.glued else {
            return;
        };
        let text = self.text;
        for m in ac.find_iter(text) {
            let p = m.start();
            if p == 0 || !is_word(text[p - 1]) {
                continue;
            }
            for &r in &targets[m.pattern().as_usize()] {
                // This pass runs after the others, so a later finding of the
                // same rule must not hide this earlier one.
                let last = std::mem::replace(&mut self.last_end[r], p);
                self.try_cut(r, p, m.end(), (p, text.len()));
                self.last_end[r] = self.last_end[r].max(last);
            }
        }
    }

    /// One pass over the bytes: runs of digits (for digit-anchored rules)
    /// and ASCII words (looked up in the word dictionary: names, street
    /// suffixes, titles, context words of context-anchored rules).
    ///
    /// The text was classified 64 bytes at a time into bit masks (see
    /// [`start_bitmaps`]), so only word starts and digit-run starts cost
    /// anything; most words are then rejected by their first three letters
    /// without finding their end.
    fn tokens(&mut self) {
        let digits_wanted = !self.inner.digit_rules.is_empty() || !self.inner.suffixes.is_empty();
        // First byte not yet consumed by a digit run.
        let mut resume = 0;
        for k in 0..self.word_starts.len() {
            let words = self.word_starts[k];
            let runs = if digits_wanted { self.run_starts[k] } else { 0 };
            let base = k * 64;
            let mut events = words | runs;
            while events != 0 {
                let i = events.trailing_zeros() as usize;
                events &= events - 1;
                let p = base + i;
                if p < resume {
                    continue;
                }
                if words >> i & 1 == 1 {
                    self.word_start(p);
                } else {
                    resume = self.digit_run(p);
                }
            }
        }
    }

    /// An ASCII letter at `s` that starts a word: try word-start literals
    /// and dictionary phrases.
    #[inline]
    fn word_start(&mut self, s: usize) {
        let words = &self.inner.words;
        let text = self.text;
        let hint = words.hint(text, s);
        if hint.prefix {
            for p in words.prefixes_at(&text[s..]) {
                if text[s..].starts_with(&p.literal) {
                    self.try_rule(p.rule, s, s + p.literal.len());
                }
            }
        }
        if hint.word {
            let e = alpha_run_end(text, s + 1);
            if words.may_contain(&text[s..e]) {
                self.word_at(s, e);
            }
        }
    }

    /// The digit run starting at `i`: try the digit-anchored rules whose
    /// gates it passes. Returns the end of the run.
    fn digit_run(&mut self, i: usize) -> usize {
        if i >= 4 && self.text[i - 1] == b' ' && !self.inner.suffixes.is_empty() {
            // The literals have three bytes or more (checked at load).
            let k = super::suffix_bit(&self.text[i - 4..i - 1]);
            if self.inner.suffix_bloom[k / 64] >> (k % 64) & 1 == 1 {
                self.word_suffixes(i - 1);
            }
        }
        let inner = self.inner;
        let rules = &inner.digit_rules;
        let text = self.text;
        let n = text.len();
        let start = i;
        let mut j = start;
        let mut digits = 0;
        // Separators taken into the run, by kind (index 0 stays 0).
        let mut seps = [0u32; 9];
        // Bit per separator kind taken.
        let mut kinds = 0u16;
        let is_digit = |k: usize| k < n && text[k].is_ascii_digit();
        let end = loop {
            let from = j;
            while j < n && text[j].is_ascii_digit() {
                j += 1;
            }
            digits += j - from;
            // Up to two separators in a row, e.g. ") " in "(415) 555".
            let s1 = text.get(j).map_or(0, |&b| RUN_SEP[b as usize]);
            if s1 == 0 {
                break j;
            }
            if is_digit(j + 1) {
                seps[s1 as usize] += 1;
                kinds |= 1 << s1;
                j += 1;
                continue;
            }
            let s2 = text.get(j + 1).map_or(0, |&b| RUN_SEP[b as usize]);
            if s2 != 0 && is_digit(j + 2) {
                seps[s1 as usize] += 1;
                seps[s2 as usize] += 1;
                kinds |= 1 << s1 | 1 << s2;
                j += 2;
                continue;
            }
            break j;
        };
        for gate in rules {
            if gate.min_digits > digits {
                break;
            }
            if digits <= gate.max_digits && gate.admits(text, start, end, &seps, kinds) {
                if gate.glued {
                    self.try_glued_run(gate.rule, start, end, gate.letters_before);
                } else {
                    self.try_rule(gate.rule, start, end);
                }
            }
        }
        end
    }

    /// `inside` rules whose literal ends the word that ends at `end`, inside
    /// it (`Hauptstraße` before ` 42`): each runs with the literal as its
    /// anchor, so its `before` window takes in the rest of the word.
    #[inline(never)]
    fn word_suffixes(&mut self, end: usize) {
        let inner = self.inner;
        let text = self.text;
        for (lit, r) in &inner.suffixes {
            let Some(start) = end.checked_sub(lit.len()) else {
                continue;
            };
            // Inside a word: a letter, digit or byte of a non-ASCII letter
            // comes before.
            let inside = start > 0 && (is_word(text[start - 1]) || text[start - 1] >= 0x80);
            if inside && text[start..end] == lit[..] {
                self.try_rule(*r, start, end);
            }
        }
    }

    /// Rule `r` of a `glued` rule at the literal `start..end`; when it finds
    /// nothing, again on the text cut after the literal where a letter meets
    /// a digit or `_` (`jane@acme.io4111…`) or where a `glued` literal
    /// starts inside a word (`jane@acme.ioghp_…`), at up to three such
    /// places before the next space.
    #[inline(never)]
    fn try_glued_literal(&mut self, r: usize, start: usize, end: usize) {
        let text = self.text;
        let found = self.out.len();
        self.try_rule(r, start, end);
        let limit = (end + self.inner.rules[r].after).min(text.len());
        let mut cuts = 0;
        for k in end + 1..limit {
            if self.out.len() != found || cuts == 3 || text[k].is_ascii_whitespace() {
                break;
            }
            let letter_digit =
                text[k - 1].is_ascii_alphabetic() && (text[k].is_ascii_digit() || text[k] == b'_');
            // Glued literals start with a letter.
            let glued_start =
                is_word(text[k - 1]) && text[k].is_ascii_alphabetic() && self.glued_literal_at(k);
            if letter_digit || glued_start {
                self.try_cut(r, start, end, (0, k));
                cuts += 1;
            }
        }
    }

    /// Does a literal of a `glued` rule start at `k`?
    fn glued_literal_at(&self, k: usize) -> bool {
        self.inner.glued.as_ref().is_some_and(|(ac, _)| {
            let input = aho_corasick::Input::new(self.text)
                .range(k..)
                .anchored(aho_corasick::Anchored::Yes);
            ac.find(input).is_some()
        })
    }

    /// Rule `r` of a `glued` gate at the digit run `start..end`; when it finds
    /// nothing and letters touch the run, again on the text cut there: before
    /// the run (or before the `back` upper-case letters a rule with
    /// `letters_before` takes, e.g. an IBAN's country code), after it, then
    /// on both sides.
    #[inline(never)]
    fn try_glued_run(&mut self, r: usize, start: usize, end: usize, back: usize) {
        let text = self.text;
        let found = self.out.len();
        self.try_rule(r, start, end);
        let glued_before = start > 0 && text[start - 1].is_ascii_alphabetic();
        let glued_after = end < text.len() && text[end].is_ascii_alphabetic();
        // With a letter right before the run, `upper_before` counts from it.
        let lo = if glued_before {
            start - upper_before(text, start, false).min(back)
        } else {
            start
        };
        let cuts = [
            (glued_before, (lo, text.len())),
            (glued_after, (0, end)),
            (glued_before && glued_after, (lo, end)),
        ];
        for (glued, cut) in cuts {
            if self.out.len() != found {
                break;
            }
            if glued && (cut.0 == 0 || text[cut.0 - 1].is_ascii_alphabetic()) {
                self.try_cut(r, start, end, cut);
            }
        }
    }

    /// The ASCII word `s..e` starts at a word boundary: try every dictionary
    /// phrase keyed by it.
    fn word_at(&mut self, s: usize, e: usize) {
        let inner = self.inner;
        let text = self.text;
        for entry in inner.words.get(&text[s..e]) {
            let pe = s + entry.phrase.len();
            let Some(got) = text.get(s..pe) else { continue };
            let same = if entry.ci {
                got.eq_ignore_ascii_case(&entry.phrase)
            } else {
                *got == *entry.phrase
            };
            if !same || (pe < text.len() && is_word(text[pe]) && entry.word) {
                continue;
            }
            self.try_rule(entry.rule, s, pe);
        }
    }

    /// Rules anchored on context words can also be switched on by the JSON
    /// key alone (`{"routing": "021000021"}`): then the whole (short) text is
    /// the window.
    fn key_driven(&mut self) {
        if self.key.is_none() {
            return;
        }
        let inner = self.inner;
        for &r in &inner.context_rules {
            if self.key_context(r).is_some() {
                let end = self.text.len().min(KEY_WINDOW);
                self.search_window(r, 0, end, 0, end);
            }
        }
    }

    /// The context word (and delta) of rule `r` that the JSON key contains.
    fn key_context(&self, r: usize) -> Option<(Arc<str>, f32)> {
        let key = self.key.as_deref()?;
        let ctx = self.inner.rules[r].ctx.as_ref()?;
        ctx.lower.iter().enumerate().find_map(|(i, w)| {
            let hit = key.match_indices(w.as_str()).any(|(p, _)| {
                let kb = key.as_bytes();
                let before_ok = p == 0 || !is_word(kb[p - 1]);
                let after_ok = p + w.len() >= kb.len() || !is_word(kb[p + w.len()]);
                before_ok && after_ok
            });
            hit.then(|| ctx.words[i].clone())
        })
    }

    /// Evaluate rule `r` around the anchor `a_start..a_end`.
    fn try_rule(&mut self, r: usize, a_start: usize, a_end: usize) {
        let rule = &self.inner.rules[r];

        if a_start < self.last_end[r] {
            return;
        }
        if let Some(next) = rule.next {
            let after = &self.text[a_end.min(self.cut.1)..self.cut.1];
            let at = after.iter().position(|&b| b != b' ' && b != b'\t');
            if !at.is_some_and(|i| next.contains(after[i])) {
                return;
            }
        }
        let ws = a_start.saturating_sub(rule.before).max(self.cut.0);
        let we = (a_end + rule.after).min(self.cut.1);
        match rule.anchor {
            Anchor::Literal | Anchor::Digits if rule.before == 0 => {
                self.search_anchored(r, a_start, we)
            }
            Anchor::Context => self.search_nearest(r, ws, a_start, we),
            _ => self.search_window(r, ws, we, a_start, a_end),
        }
    }

    /// Rule `r` on the text cut to `lo..hi` (see [`Scan::cut`]) around the
    /// anchor `a_start..a_end`.
    fn try_cut(&mut self, r: usize, a_start: usize, a_end: usize, (lo, hi): (usize, usize)) {
        self.cut = (lo, hi);
        self.try_rule(r, a_start, a_end);
        self.cut = (0, self.text.len());
    }

    fn search_anchored(&mut self, r: usize, at: usize, we: usize) {
        if let Some((s, e, _, me)) = self.find(r, at..we, Anchored::Yes) {
            self.accept(r, s, e, me);
        }
    }

    /// Find matches of rule `r` in `ws..we` that overlap the anchor `as_..ae`.
    fn search_window(&mut self, r: usize, ws: usize, we: usize, as_: usize, ae: usize) {
        let mut at = ws.max(self.last_end[r]);
        // A match that starts at or after this cannot overlap the anchor,
        // so there is no need to look for one.
        let last_start = ae.max(as_ + 1);
        while at < we && at < last_start {
            let Some((s, e, ms, me)) = self.find(r, at..we, Anchored::No) else {
                break;
            };
            at = if me > ms { me } else { me + 1 };
            if me <= as_ {
                continue;
            }
            if ms >= last_start {
                break;
            }
            self.accept(r, s, e, me);
        }
    }

    /// Context-anchored rules take one value per context word: the first
    /// acceptable match after the word, else the last one before it, so that
    /// "DOB: 1985-03-12, seen 2024-03-18" flags only the birth date.
    fn search_nearest(&mut self, r: usize, ws: usize, word: usize, we: usize) {
        let mut at = word.max(self.last_end[r]);
        while at < we {
            let Some((s, e, ms, me)) = self.find(r, at..we, Anchored::No) else {
                break;
            };
            at = if me > ms { me } else { me + 1 };
            if self.accept(r, s, e, me) {
                return;
            }
        }
        let mut before = Vec::new();
        let mut at = ws.max(self.last_end[r]);
        while at < word {
            let Some(m) = self.find(r, at..word, Anchored::No) else {
                break;
            };
            at = if m.3 > m.2 { m.3 } else { m.3 + 1 };
            before.push(m);
        }
        for (s, e, _, me) in before.into_iter().rev() {
            if self.accept(r, s, e, me) {
                return;
            }
        }
    }

    /// One match of rule `r` in `span` of the text as cut (see
    /// [`Scan::cut`]): (reported start, end, match start, end).
    fn find(
        &mut self,
        r: usize,
        span: std::ops::Range<usize>,
        anchored: Anchored,
    ) -> Option<(usize, usize, usize, usize)> {
        let rule = &self.inner.rules[r];
        let (lo, hi) = self.cut;
        let input = &Input::new(&self.text[lo..hi])
            .range(span.start - lo..span.end - lo)
            .anchored(anchored);
        // Same regex, same syntax, same match semantics: the DFAs find the
        // match the meta regex would (forward DFA for the end; the start is
        // the anchor, or the reverse DFA finds it), with less setup per
        // call. A DFA error (they never quit on these ASCII-only patterns,
        // but an anchored DFA refuses an unanchored search) falls through
        // to the meta regex.
        let dfa_match = match &rule.dfa {
            Some(Dfa::Anchored(fwd)) => fwd
                .try_search_fwd(input)
                .ok()
                .map(|m| m.map(|end| input.start()..end.offset())),
            Some(Dfa::Window(dfa)) => dfa.try_search(input).ok().map(|m| m.map(|m| m.range())),
            None => None,
        };
        let m = match dfa_match {
            Some(None) => return None,
            Some(Some(m)) => m,
            None => rule.re.search(input)?.range(),
        };
        if rule.group == 0 {
            return Some((m.start + lo, m.end + lo, m.start + lo, m.end + lo));
        }
        // Captures need a slower engine: only on a real match, and their
        // slots are allocated once per rule per scan, not per match.
        if self.caps.len() <= r {
            self.caps.resize_with(self.inner.rules.len(), || None);
        }
        let caps = self.caps[r].get_or_insert_with(|| rule.re.create_captures());
        let exact = input.clone().range(m.clone()).anchored(Anchored::Yes);
        rule.re.search_captures(&exact, caps);
        let g = caps.get_group(rule.group)?;
        Some((g.start + lo, g.end + lo, m.start + lo, m.end + lo))
    }

    /// Validate, score and record one match `s..e` (reported span) of rule `r`.
    /// Returns whether the match was recorded.
    fn accept(&mut self, r: usize, s: usize, e: usize, match_end: usize) -> bool {
        let inner = self.inner;
        let rule: &Rule = &inner.rules[r];
        let text = self.text;
        if s >= e || s < self.last_end[r] {
            return false;
        }
        // Byte-level regexes may stop inside a multi-byte character.
        if !self.view.is_char_boundary(s) || !self.view.is_char_boundary(e) {
            return false;
        }
        let value = &text[s..e];
        if rule.exclude.contains(&rule.entity, value) || inner.allow.contains(&rule.entity, value) {
            self.last_end[r] = match_end.max(e);
            return false;
        }
        // Most candidates fail their validator: allocate evidence only after.
        let checksum = match &rule.validator {
            Some((name, f)) => {
                let result = f(value);
                if result == Checksum::Invalid {
                    return false;
                }
                Some(Evidence::Checksum {
                    validator: name.clone(),
                    result,
                })
            }
            None => None,
        };
        let mut evidence = Vec::with_capacity(4);
        evidence.push(Evidence::Pattern { score: rule.score });
        evidence.extend(checksum);
        let (lo, hi) = self.cut;
        if (lo, hi) != (0, text.len())
            && ((s == lo && lo > 0 && is_word(text[lo - 1]))
                || (e == hi && hi < text.len() && is_word(text[hi])))
        {
            evidence.push(Evidence::Glued);
        }
        let mut score = rule.score;
        if let Some(ctx) = &rule.ctx {
            let lo = s.saturating_sub(ctx.before);
            let hi = (e + ctx.after).min(text.len());
            let mut best: Option<(Arc<str>, f32)> = None;
            let mut worst: Option<(Arc<str>, f32)> = None;
            let mut consider = |i: usize| {
                let (w, d) = &ctx.words[i];
                if *d > 0.0 && best.as_ref().is_none_or(|b| *d > b.1) {
                    best = Some((w.clone(), *d));
                } else if *d < 0.0 && worst.as_ref().is_none_or(|b| *d < b.1) {
                    worst = Some((w.clone(), *d));
                }
            };
            // Whole words only, inside the window, never inside the match.
            let fits = |ms: usize, me: usize| {
                me <= hi
                    && (ms == 0 || !is_word(text[ms - 1]))
                    && (me == text.len() || !is_word(text[me]))
                    && !(ms < e && me > s)
            };
            for_bits_in(&self.word_starts, lo, hi, |ms| {
                if !ctx.dict.hint(text, ms).word {
                    return;
                }
                let we = alpha_run_end(text, ms + 1);
                if !ctx.dict.may_contain(&text[ms..we]) {
                    return;
                }
                for entry in ctx.dict.get(&text[ms..we]) {
                    let me = ms + entry.phrase.len();
                    let same = text
                        .get(ms..me)
                        .is_some_and(|got| got.eq_ignore_ascii_case(&entry.phrase));
                    if same && fits(ms, me) {
                        consider(entry.rule);
                    }
                }
            });
            if let Some((ac, ids)) = &ctx.rest {
                for m in ac.find_iter(&text[lo..hi]) {
                    if fits(lo + m.start(), lo + m.end()) {
                        consider(ids[m.pattern().as_usize()]);
                    }
                }
            }
            if best.is_none() {
                best = self.key_context(r);
            }
            if rule.required && best.is_none() {
                return false;
            }
            for (word, delta) in best.into_iter().chain(worst) {
                score += delta;
                evidence.push(Evidence::Context { word, delta });
            }
        }
        let score = score.clamp(0.0, 1.0);
        self.last_end[r] = match_end.max(e);
        if score < inner.config.min_score {
            return false;
        }
        self.out.push(Raw {
            rule: r,
            start: s,
            end: e,
            score,
            evidence,
        });
        true
    }
}

#[cfg(test)]
mod tests {
    use super::{
        alpha_run_end, block_masks, for_bits_in, resolve_overlaps, start_bitmaps, ALPHA, CLASS,
    };
    use crate::finding::Finding;

    type Candidate = (&'static str, usize, usize, f32);
    type Kept = (&'static str, usize, usize);

    /// Overlap cases: text, findings as (entity, start, end, score), and
    /// what is kept as (entity, start, end).
    const OVERLAPS: &[(&str, &[Candidate], &[Kept])] = &[
        // The loser keeps the word the winner does not cover.
        (
            "Mr. John Smithpostgres://u:p@h/db",
            &[("PERSON", 4, 22, 0.8), ("URL", 9, 33, 0.9)],
            &[("PERSON", 4, 8), ("URL", 9, 33)],
        ),
        // A gap between two winners is kept.
        (
            "aaaa bbbb cccc",
            &[("A", 0, 4, 0.9), ("C", 10, 14, 0.9), ("LOW", 2, 12, 0.5)],
            &[("A", 0, 4), ("LOW", 5, 9), ("C", 10, 14)],
        ),
        // Covered losers and leftovers under four bytes are dropped.
        (
            "ab 4242 4242 xyz",
            &[
                ("CARD", 3, 12, 0.9),
                ("PHONE", 3, 7, 0.5),
                ("LOW", 8, 16, 0.5),
            ],
            &[("CARD", 3, 12)],
        ),
    ];

    #[test]
    fn overlaps_keep_the_best_and_the_uncovered_words() {
        for &(text, found, kept) in OVERLAPS {
            let found = found
                .iter()
                .map(|&(entity, start, end, score)| Finding {
                    entity: entity.into(),
                    rule: "test".into(),
                    start,
                    end,
                    score,
                    evidence: vec![],
                    obfuscated: false,
                })
                .collect();
            let resolved = resolve_overlaps(text, found);
            let got: Vec<(&str, usize, usize)> = resolved
                .iter()
                .map(|f| (&*f.entity, f.start, f.end))
                .collect();
            assert_eq!(got, kept, "{text}");
        }
    }

    #[test]
    fn block_masks_match_byte_classes() {
        let mut text: Vec<u8> = (0..=255u8).collect();
        text.extend(b"abc 123 Zz9 /:@[`{ \xc3\xa9".repeat(5));
        for start in 0..text.len() {
            let block = &text[start..text.len().min(start + 64)];
            let (alpha, digit) = block_masks(block);
            for (i, &b) in block.iter().enumerate() {
                assert_eq!(alpha >> i & 1 == 1, b.is_ascii_alphabetic(), "{start}+{i}");
                assert_eq!(digit >> i & 1 == 1, b.is_ascii_digit(), "{start}+{i}");
            }
            if block.len() < 64 {
                assert_eq!((alpha | digit) >> block.len(), 0, "padding at {start}");
            }
        }
    }

    #[test]
    fn start_bitmaps_match_a_byte_loop_in_every_window() {
        let mut text: Vec<u8> = (0..=255u8).collect();
        text.extend(b"ab1 22x 3y Zz9 /:@[`{ \xc3\xa9q 7".repeat(9));
        let (words, runs) = start_bitmaps(&text);
        let alnum = |i: usize| i > 0 && text[i - 1].is_ascii_alphanumeric();
        let digit = |i: usize| i > 0 && text[i - 1].is_ascii_digit();
        let word_start = |i: usize| text[i].is_ascii_alphabetic() && !alnum(i);
        let run_start = |i: usize| text[i].is_ascii_digit() && !digit(i);
        for lo in (0..text.len()).step_by(7) {
            for hi in [lo, lo + 1, lo + 63, lo + 64, lo + 65, lo + 200, text.len()] {
                let hi = hi.min(text.len());
                let mut got = Vec::new();
                for_bits_in(&words, lo, hi, |i| got.push(i));
                let want: Vec<usize> = (lo..hi).filter(|&i| word_start(i)).collect();
                assert_eq!(got, want, "word starts in {lo}..{hi}");
                got.clear();
                for_bits_in(&runs, lo, hi, |i| got.push(i));
                let want: Vec<usize> = (lo..hi).filter(|&i| run_start(i)).collect();
                assert_eq!(got, want, "run starts in {lo}..{hi}");
            }
        }
    }

    #[test]
    fn alpha_run_end_matches_byte_loop() {
        let slow = |t: &[u8], mut i: usize| {
            while i < t.len() && CLASS[t[i] as usize] == ALPHA {
                i += 1;
            }
            i
        };
        let mut text: Vec<u8> = (0..=255u8).collect();
        text.extend(b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ@[`{ \xc3\xa9zz");
        text.extend(b"helloWorld_x Zq9 ".repeat(3));
        for i in 0..=text.len() {
            assert_eq!(alpha_run_end(&text, i), slow(&text, i), "at {i}");
        }
    }
}
