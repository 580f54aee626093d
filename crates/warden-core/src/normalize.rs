//! A normalised view of a text, with every byte mapped back to the original.
//!
//! Obfuscation must not hide PII, so detection runs on a view where
//! compatibility forms are folded (NFKC, so fullwidth and other Unicode digits
//! become ASCII), invisible format characters are removed and Unicode tag
//! characters are decoded to the ASCII they smuggle. Optionally
//! ([`Normalized::decoded`]) percent-encoding, JSON `\uXXXX` escapes and HTML
//! entities are decoded too, to a bounded depth.
//!
//! Most text is plain ASCII with none of this, so [`normalize`] first checks
//! the bytes and, when nothing needs folding, borrows the input and builds no
//! offset map at all.

use std::borrow::Cow;

use unicode_normalization::char::canonical_combining_class;
use unicode_normalization::{is_nfkc_quick, IsNormalized, UnicodeNormalization};

/// Bit per layer; index into [`LAYER_NAMES`].
const NFKC: u8 = 1;
const ZERO_WIDTH: u8 = 2;
const TAG_CHARS: u8 = 4;
const PERCENT: u8 = 8;
const JSON_ESCAPE: u8 = 16;
const HTML_ENTITY: u8 = 32;

const LAYER_NAMES: [(u8, &str); 6] = [
    (NFKC, "nfkc"),
    (ZERO_WIDTH, "zero_width"),
    (TAG_CHARS, "tag_chars"),
    (PERCENT, "percent"),
    (JSON_ESCAPE, "json_escape"),
    (HTML_ENTITY, "html_entity"),
];

/// Upper bound on decode rounds (`%2540` → `%40` → `@` is two).
const MAX_DECODE_DEPTH: usize = 3;

/// A normalised view of a text plus the map back to the original's bytes.
///
/// # Example
/// ```
/// use warden_core::normalize;
/// let text = "call ５５５\u{200B}-0100";
/// let view = normalize(text);
/// assert_eq!(view.text(), "call 555-0100");
/// let (s, e) = view.to_original(5, 13);
/// assert_eq!(&text[s..e], "５５５\u{200B}-0100");
/// assert_eq!(view.layers(), ["nfkc", "zero_width"]);
/// ```
#[derive(Debug, Clone)]
pub struct Normalized<'a> {
    original: &'a str,
    text: Cow<'a, str>,
    /// Per byte of `text`: the original byte range of the segment it came from.
    /// `None` when every byte of `text` is at its offset in the original
    /// (the original itself, or it with escapes blanked).
    map: Option<Vec<(usize, usize)>>,
    /// Per byte of `text`: the layers that touched it (same length as `map`).
    marks: Vec<u8>,
    layers: u8,
}

/// Normalise `text` (NFKC, invisible characters removed, tag characters
/// decoded, escaped line breaks and tabs blanked).
///
/// Plain text is borrowed without copying or building a map.
pub fn normalize(text: &str) -> Normalized<'_> {
    let mut view = if needs_unicode_pass(text) {
        let mut b = Builder::with_capacity(text.len());
        unicode_pass(text, &mut b, |s, e| (s, e));
        b.finish(text)
    } else {
        Normalized::identity(text)
    };
    blank_break_escapes(&mut view.text);
    view
}

/// Blanks the escapes `\n`, `\t` and `\r` (backslash runs of odd length
/// only: `\\n` is a backslash and an `n`) with two spaces each, in place.
///
/// Text copied out of JSON (tool-call arguments, logs) keeps its line breaks
/// escaped, and the escape letter glues to the next word: `\nJohn Smith`
/// hides the name from whole-word rules, `\tjane@acme.io` detects as
/// `tjane@acme.io`. Same length, so byte offsets stay the original's.
fn blank_break_escapes(text: &mut Cow<'_, str>) {
    let bytes = text.as_bytes();
    let mut at: Vec<usize> = Vec::new();
    let mut run = 0usize;
    let mut prev = usize::MAX;
    for i in memchr::memchr_iter(b'\\', bytes) {
        run = if prev.wrapping_add(1) == i {
            run + 1
        } else {
            1
        };
        prev = i;
        if run % 2 == 1 && matches!(bytes.get(i + 1), Some(b'n' | b't' | b'r')) {
            at.push(i);
        }
    }
    if at.is_empty() {
        return;
    }
    let owned = text.to_mut();
    for i in at {
        owned.replace_range(i..i + 2, "  ");
    }
}

impl<'a> Normalized<'a> {
    fn identity(text: &'a str) -> Normalized<'a> {
        Normalized {
            original: text,
            text: Cow::Borrowed(text),
            map: None,
            marks: Vec::new(),
            layers: 0,
        }
    }

    /// The normalised text.
    pub fn text(&self) -> &str {
        &self.text
    }

    /// The original text this view was made from.
    pub fn original(&self) -> &'a str {
        self.original
    }

    /// True when the view is the original text byte for byte.
    pub fn is_identity(&self) -> bool {
        matches!(self.text, Cow::Borrowed(_)) && self.map.is_none()
    }

    /// Map a byte span of [`Normalized::text`] to the smallest span of the
    /// original text that produced it. The result always falls on `char`
    /// boundaries of the original. Out-of-range input is clamped.
    pub fn to_original(&self, start: usize, end: usize) -> (usize, usize) {
        let Some(map) = &self.map else {
            let n = self.original.len();
            return (start.min(n), end.min(n));
        };
        let end = end.min(map.len());
        let start = start.min(end);
        if start == end {
            let at = map.get(start).map_or(self.original.len(), |m| m.0);
            return (at, at);
        }
        let s = map[start].0;
        let e = map[end - 1].1;
        (s, e.max(s))
    }

    /// Names of the layers that changed something, in a fixed order:
    /// `nfkc`, `zero_width`, `tag_chars`, `percent`, `json_escape`, `html_entity`.
    pub fn layers(&self) -> Vec<&'static str> {
        names(self.layers)
    }

    /// Names of the layers that touched the view's bytes `start..end` (for a
    /// finding's evidence).
    pub fn layers_in(&self, start: usize, end: usize) -> Vec<&'static str> {
        let end = end.min(self.marks.len());
        let start = start.min(end);
        names(self.marks[start..end].iter().fold(0, |a, m| a | m))
    }

    /// The view with percent-encoding, JSON `\uXXXX` escapes and HTML
    /// entities decoded (up to three rounds, then normalised again), or `None`
    /// when the text contains nothing to decode.
    ///
    /// # Example
    /// ```
    /// use warden_core::normalize;
    /// let text = "to: jane%40example.org";
    /// let view = normalize(text).decoded().unwrap();
    /// assert_eq!(view.text(), "to: jane@example.org");
    /// assert_eq!(view.to_original(4, 20), (4, 22));
    /// assert_eq!(view.layers(), ["percent"]);
    /// ```
    pub fn decoded(&self) -> Option<Normalized<'a>> {
        if !has_decodable(self.text.as_bytes()) {
            return None;
        }
        let mut cur: Normalized<'a> = self.clone();
        for _ in 0..MAX_DECODE_DEPTH {
            if !has_decodable(cur.text.as_bytes()) {
                break;
            }
            let mut b = Builder::with_capacity(cur.text.len());
            decode_pass(&cur.text, &mut b);
            cur = cur.compose(b);
        }
        if needs_unicode_pass(&cur.text) {
            let mut b = Builder::with_capacity(cur.text.len());
            unicode_pass(&cur.text, &mut b, |s, e| (s, e));
            cur = cur.compose(b);
        }
        Some(cur)
    }

    /// A view built by `b` over this view's text, mapped to the original.
    fn compose(&self, b: Builder) -> Normalized<'a> {
        let mut map = Vec::with_capacity(b.map.len());
        let mut marks = Vec::with_capacity(b.map.len());
        for (i, &(s, e)) in b.map.iter().enumerate() {
            let (os, oe) = self.to_original(s, e);
            map.push((os, oe));
            let inner = self
                .marks
                .get(s..e)
                .map_or(0, |m| m.iter().fold(0, |a, x| a | x));
            marks.push(b.marks[i] | inner);
        }
        Normalized {
            original: self.original,
            text: Cow::Owned(b.out),
            map: Some(map),
            marks,
            layers: self.layers | b.layers,
        }
    }
}

fn names(bits: u8) -> Vec<&'static str> {
    LAYER_NAMES
        .iter()
        .filter(|(b, _)| bits & b != 0)
        .map(|(_, n)| *n)
        .collect()
}

/// Accumulates output text with, per output byte, its source range and layers.
struct Builder {
    out: String,
    map: Vec<(usize, usize)>,
    marks: Vec<u8>,
    layers: u8,
    /// Layers of removed characters, charged to the next byte pushed.
    pending: u8,
}

impl Builder {
    fn with_capacity(n: usize) -> Builder {
        Builder {
            out: String::with_capacity(n),
            map: Vec::with_capacity(n),
            marks: Vec::with_capacity(n),
            layers: 0,
            pending: 0,
        }
    }

    fn push(&mut self, s: &str, src: (usize, usize), layer: u8) {
        for _ in 0..s.len() {
            self.map.push(src);
            self.marks.push(layer | self.pending);
            self.pending = 0;
        }
        self.layers |= layer;
        self.out.push_str(s);
    }

    fn push_char(&mut self, c: char, src: (usize, usize), layer: u8) {
        let mut buf = [0u8; 4];
        self.push(c.encode_utf8(&mut buf), src, layer);
    }

    fn drop_char(&mut self, layer: u8) {
        self.pending |= layer;
        self.layers |= layer;
    }

    fn finish(self, original: &str) -> Normalized<'_> {
        if self.layers == 0 {
            return Normalized::identity(original);
        }
        Normalized {
            original,
            text: Cow::Owned(self.out),
            map: Some(self.map),
            marks: self.marks,
            layers: self.layers,
        }
    }
}

/// Invisible characters that can split a value without showing: zero-width
/// and other format characters, bidi controls, variation selectors, fillers.
fn is_invisible(c: char) -> bool {
    matches!(c as u32,
        0x00AD | 0x034F | 0x061C | 0x115F | 0x1160 | 0x17B4 | 0x17B5 | 0x180B..=0x180F
        | 0x200B..=0x200F | 0x202A..=0x202E | 0x2060..=0x206F | 0x3164 | 0xFE00..=0xFE0F
        | 0xFEFF | 0xFFA0 | 0xFFF0..=0xFFFB | 0x1BCA0..=0x1BCA3 | 0x1D173..=0x1D17A
        | 0xE0000..=0xE0FFF)
}

/// Zero of each Unicode decimal-digit block that NFKC leaves alone
/// (Arabic-Indic, Devanagari, Thai, ...). Each block is ten consecutive digits.
const DIGIT_ZEROS: [u32; 37] = [
    0x0660, 0x06F0, 0x07C0, 0x0966, 0x09E6, 0x0A66, 0x0AE6, 0x0B66, 0x0BE6, 0x0C66, 0x0CE6, 0x0D66,
    0x0DE6, 0x0E50, 0x0ED0, 0x0F20, 0x1040, 0x1090, 0x17E0, 0x1810, 0x1946, 0x19D0, 0x1A80, 0x1A90,
    0x1B50, 0x1BB0, 0x1C40, 0x1C50, 0xA620, 0xA8D0, 0xA900, 0xA9D0, 0xA9F0, 0xAA50, 0xABF0,
    0x104A0, 0x11066,
];

fn fold_digit(c: char) -> Option<char> {
    let cp = c as u32;
    if cp < 0x0660 {
        return None;
    }
    DIGIT_ZEROS
        .iter()
        .find(|&&z| cp >= z && cp < z + 10)
        .and_then(|&z| char::from_digit(cp - z, 10))
}

fn is_tag(c: char) -> bool {
    (0xE0020..=0xE007E).contains(&(c as u32))
}

/// The first byte at or after `from` that is not ASCII, or `b.len()` if
/// there is none; eight bytes at a time.
fn next_non_ascii(b: &[u8], from: usize) -> usize {
    let mut i = from;
    while let Some(chunk) = b.get(i..i + 8) {
        let high = u64::from_le_bytes(chunk.try_into().unwrap_or_default()) & 0x8080_8080_8080_8080;
        if high != 0 {
            return i + (high.trailing_zeros() / 8) as usize;
        }
        i += 8;
    }
    while i < b.len() && b[i] < 0x80 {
        i += 1;
    }
    i.min(b.len())
}

/// Only the runs of non-ASCII characters are looked at: ASCII characters
/// are never invisible or foldable, and as NFKC starters of class 0 they
/// split the quick check into independent runs.
fn needs_unicode_pass(text: &str) -> bool {
    if text.is_ascii() {
        return false;
    }
    let b = text.as_bytes();
    let mut i = 0;
    loop {
        i = next_non_ascii(b, i);
        if i == b.len() {
            return false;
        }
        let mut j = i;
        while j < b.len() && b[j] >= 0x80 {
            j += 1;
        }
        // Runs of bytes >= 0x80 start and end on character boundaries.
        let run = text.get(i..j).unwrap_or_default();
        if run
            .chars()
            .any(|c| is_invisible(c) || fold_digit(c).is_some())
            || is_nfkc_quick(run.chars()) != IsNormalized::Yes
        {
            return true;
        }
        i = j;
    }
}

/// NFKC per segment (a starter and its combining marks), so that every output
/// byte maps to one small original range.
fn unicode_pass(text: &str, b: &mut Builder, map: impl Fn(usize, usize) -> (usize, usize)) {
    let mut iter = text.char_indices().peekable();
    let mut seg = String::new();
    while let Some((start, c)) = iter.next() {
        let mark_follows = iter
            .peek()
            .is_some_and(|&(_, n)| !n.is_ascii() && canonical_combining_class(n) != 0);
        if c.is_ascii() && !mark_follows {
            b.push_char(c, map(start, start + 1), 0);
            continue;
        }
        if is_tag(c) {
            let ascii = char::from_u32(c as u32 - 0xE0000).unwrap_or(' ');
            b.push_char(ascii, map(start, start + c.len_utf8()), TAG_CHARS);
            continue;
        }
        if is_invisible(c) {
            b.drop_char(if (0xE0000..=0xE0FFF).contains(&(c as u32)) {
                TAG_CHARS
            } else {
                ZERO_WIDTH
            });
            continue;
        }
        let mut end = start + c.len_utf8();
        seg.clear();
        seg.push(c);
        while let Some(&(i, n)) = iter.peek() {
            if canonical_combining_class(n) == 0 {
                break;
            }
            seg.push(n);
            end = i + n.len_utf8();
            iter.next();
        }
        let src = map(start, end);
        if let Some(d) = fold_digit(c).filter(|_| seg.len() == c.len_utf8()) {
            b.push_char(d, src, NFKC);
            continue;
        }
        if is_nfkc_quick(seg.chars()) == IsNormalized::Yes {
            b.push(&seg, src, 0);
            continue;
        }
        let folded: String = seg.nfkc().map(|n| fold_digit(n).unwrap_or(n)).collect();
        let layer = if folded == seg { 0 } else { NFKC };
        b.push(&folded, src, layer);
    }
}

fn hex_val(b: u8) -> Option<u32> {
    (b as char).to_digit(16)
}

/// Cheap check: is there any `%XX`, `\uXXXX` or `&...;` entity to decode?
fn has_decodable(bytes: &[u8]) -> bool {
    memchr::memchr3_iter(b'%', b'\\', b'&', bytes).any(|i| decode_at(bytes, i).is_some())
}

/// Decode one escape starting at `i`: (decoded bytes, consumed length, layer).
fn decode_at(bytes: &[u8], i: usize) -> Option<(Vec<u8>, usize, u8)> {
    match bytes[i] {
        b'%' => {
            // A run of %XX that decodes to valid UTF-8 (multi-byte chars are
            // percent-encoded byte by byte).
            let mut out = Vec::new();
            let mut j = i;
            while j + 2 < bytes.len() && bytes[j] == b'%' {
                let (Some(h), Some(l)) = (hex_val(bytes[j + 1]), hex_val(bytes[j + 2])) else {
                    break;
                };
                out.push((h * 16 + l) as u8);
                j += 3;
            }
            if out.is_empty() {
                return None;
            }
            // Keep the longest prefix that is valid UTF-8.
            let valid = match std::str::from_utf8(&out) {
                Ok(_) => out.len(),
                Err(e) => e.valid_up_to(),
            };
            if valid == 0 {
                return None;
            }
            out.truncate(valid);
            Some((out, valid * 3, PERCENT))
        }
        b'\\' => {
            let unit = |k: usize| -> Option<u32> {
                if bytes.get(k) != Some(&b'\\') || bytes.get(k + 1) != Some(&b'u') {
                    return None;
                }
                let h = bytes.get(k + 2..k + 6)?;
                h.iter().try_fold(0u32, |a, &x| Some(a * 16 + hex_val(x)?))
            };
            let hi = unit(i)?;
            let (cp, len) = if (0xD800..0xDC00).contains(&hi) {
                let lo = unit(i + 6).filter(|lo| (0xDC00..0xE000).contains(lo))?;
                (0x10000 + ((hi - 0xD800) << 10) + (lo - 0xDC00), 12)
            } else {
                (hi, 6)
            };
            let c = char::from_u32(cp)?;
            Some((c.to_string().into_bytes(), len, JSON_ESCAPE))
        }
        b'&' => {
            let rest = bytes.get(i + 1..(i + 12).min(bytes.len()))?;
            let semi = memchr::memchr(b';', rest)?;
            let name = &rest[..semi];
            let c = if let Some(num) = name.strip_prefix(b"#") {
                let (digits, radix) = match num.first() {
                    Some(b'x' | b'X') => (&num[1..], 16),
                    _ => (num, 10),
                };
                if digits.is_empty() {
                    return None;
                }
                let cp = digits.iter().try_fold(0u32, |a, &x| {
                    let d = (x as char).to_digit(radix)?;
                    a.checked_mul(radix)?.checked_add(d)
                })?;
                char::from_u32(cp)?
            } else {
                match name {
                    b"amp" => '&',
                    b"lt" => '<',
                    b"gt" => '>',
                    b"quot" => '"',
                    b"apos" => '\'',
                    b"nbsp" => ' ',
                    b"commat" => '@',
                    b"period" => '.',
                    b"colon" => ':',
                    b"sol" => '/',
                    b"lowbar" => '_',
                    b"hyphen" | b"dash" => '-',
                    b"plus" => '+',
                    b"num" => '#',
                    b"percnt" => '%',
                    b"equals" => '=',
                    _ => return None,
                }
            };
            Some((c.to_string().into_bytes(), semi + 2, HTML_ENTITY))
        }
        _ => None,
    }
}

fn decode_pass(text: &str, b: &mut Builder) {
    let bytes = text.as_bytes();
    let mut last = 0;
    for i in memchr::memchr3_iter(b'%', b'\\', b'&', bytes) {
        if i < last {
            continue;
        }
        let Some((dec, len, layer)) = decode_at(bytes, i) else {
            continue;
        };
        push_plain(text, last, i, b);
        // Decoded bytes are valid UTF-8 by construction (checked above).
        let s = String::from_utf8_lossy(&dec);
        b.push(&s, (i, i + len), layer);
        last = i + len;
    }
    push_plain(text, last, bytes.len(), b);
}

/// Copy `text[from..to]` one char at a time, each mapped to itself.
fn push_plain(text: &str, from: usize, to: usize, b: &mut Builder) {
    if let Some(s) = text.get(from..to) {
        for (i, c) in s.char_indices() {
            b.push_char(c, (from + i, from + i + c.len_utf8()), 0);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    proptest::proptest! {
        /// The run-by-run check agrees with checking the whole text.
        #[test]
        fn unicode_pass_check_matches_whole_text(
            s in "[a-z1 .\u{e9}\u{301}\u{308}\u{323}\u{ff11}\u{200b}\u{fb01}\u{2014}]{0,40}|\\PC{0,60}"
        ) {
            let whole = s.chars().any(|c| !c.is_ascii() && (is_invisible(c) || fold_digit(c).is_some()))
                || is_nfkc_quick(s.chars()) != IsNormalized::Yes;
            proptest::prop_assert_eq!(needs_unicode_pass(&s), whole);
        }
    }

    #[test]
    fn ascii_is_borrowed() {
        let v = normalize("plain text 123");
        assert!(v.is_identity());
        assert_eq!(v.to_original(6, 10), (6, 10));
    }

    #[test]
    fn stable_unicode_is_borrowed() {
        assert!(normalize("café naïve 東京").is_identity());
    }

    #[test]
    fn escaped_breaks_are_blanked_in_place() {
        let text = r"Hi,\nJohn Smith\tjane@acme.io C:\\new \\\n";
        let v = normalize(text);
        assert_eq!(v.text(), r"Hi,  John Smith  jane@acme.io C:\\new \\  ");
        assert_eq!(v.text().len(), text.len());
        assert_eq!(v.to_original(5, 15), (5, 15));
        assert!(!v.is_identity());
        assert!(normalize(r"C:\\temp\x").is_identity());
    }

    #[test]
    fn fullwidth_and_indic_digits_fold() {
        let t = "４１１１ ٤١";
        let v = normalize(t);
        assert_eq!(v.text(), "4111 41");
        assert_eq!(v.to_original(0, 4), (0, 12));
        assert_eq!(v.to_original(5, 7), (13, t.len()));
    }

    #[test]
    fn zero_width_removed_and_span_covers_original() {
        let t = "x jane\u{200B}.doe@exa\u{2060}mple.org y";
        let v = normalize(t);
        assert_eq!(v.text(), "x jane.doe@example.org y");
        let (s, e) = v.to_original(2, 22);
        assert_eq!(&t[s..e], "jane\u{200B}.doe@exa\u{2060}mple.org");
        assert_eq!(v.layers_in(2, 22), ["zero_width"]);
    }

    #[test]
    fn tag_chars_decode() {
        let hidden: String = "ssn"
            .chars()
            .map(|c| char::from_u32(0xE0000 + c as u32).unwrap())
            .collect();
        let t = format!("a{hidden}b");
        let v = normalize(&t);
        assert_eq!(v.text(), "assnb");
        assert_eq!(v.layers(), ["tag_chars"]);
    }

    #[test]
    fn combining_marks_compose() {
        let v = normalize("e\u{301}x");
        assert_eq!(v.text(), "\u{e9}x");
        assert_eq!(v.to_original(0, 2), (0, 3));
    }

    #[test]
    fn decode_layers() {
        let t = r"a \u006a\u0061ne&#64;ex&period;org %2540";
        let v = normalize(t).decoded().unwrap();
        assert_eq!(v.text(), "a jane@ex.org @");
        assert_eq!(v.layers(), ["percent", "json_escape", "html_entity"]);
        assert!(normalize("100% sure & done").decoded().is_none());
    }

    #[test]
    fn decoded_invalid_utf8_left_alone() {
        let v = normalize("%FF%FE and %41").decoded().unwrap();
        assert_eq!(v.text(), "%FF%FE and A");
    }
}
