//! The word dictionary: whole-word anchors looked up once per ASCII word.
//!
//! Names, street suffixes, titles and context words would make the literal
//! automaton large (and slow: its table stops fitting in cache), while
//! looking up each word of the text is a bitmap test for almost all words.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

/// FxHash-style multiply-rotate hasher: the keys are short ASCII words we
/// wrote ourselves, so SipHash's DoS resistance buys nothing here.
#[derive(Default)]
pub(crate) struct WordHasher(u64);

impl Hasher for WordHasher {
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0.rotate_left(5) ^ u64::from(b)).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
        }
    }
    fn write_u64(&mut self, n: u64) {
        // Only `word_key`s are hashed as u64 keys, and they are mixed already.
        self.0 = n;
    }
    fn finish(&self) -> u64 {
        self.0
    }
}

/// Case-folded fingerprint of an ASCII-letter word, eight bytes at a time
/// (setting bit 5 lower-cases a letter). Two words may share one: the
/// callers compare the phrase itself before using an entry.
#[inline]
fn word_key(word: &[u8]) -> u64 {
    let mix = |h: u64, x: u64| {
        let h = (h ^ (x | 0x2020_2020_2020_2020)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        h ^ (h >> 31)
    };
    let mut h = (word.len() as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    let mut chunks = word.chunks_exact(8);
    for chunk in &mut chunks {
        let mut b = [0u8; 8];
        b.copy_from_slice(chunk);
        h = mix(h, u64::from_le_bytes(b));
    }
    // Byte by byte: copying a short tail into a buffer is a `memcpy` call.
    let tail = chunks.remainder();
    if !tail.is_empty() {
        let x = tail
            .iter()
            .rev()
            .fold(0u64, |x, &b| (x << 8) | u64::from(b));
        h = mix(h, x);
    }
    h
}

type FastMap<K, V> = HashMap<K, V, BuildHasherDefault<WordHasher>>;

/// A literal that must appear at the start of a word (e.g. `AKIA`, `ghp_`).
#[derive(Debug, Clone)]
pub(crate) struct PrefixEntry {
    pub(crate) literal: Box<[u8]>,
    pub(crate) rule: usize,
}

/// Filter slot of a word of at least two ASCII letters: its first two
/// letters, case-folded.
#[inline]
fn filter_slot(word: &[u8]) -> Option<usize> {
    if word.len() < 2 {
        return None;
    }
    let a = (word[0] | 0x20).wrapping_sub(b'a') as usize;
    let b = (word[1] | 0x20).wrapping_sub(b'a') as usize;
    (a < 26 && b < 26).then_some(a * 26 + b)
}

/// One phrase keyed by its first ASCII word.
#[derive(Debug, Clone)]
pub(crate) struct WordEntry {
    /// The phrase as written in the pack (may continue past the first word:
    /// "date of birth", "api_key", "d.o.b").
    pub(crate) phrase: Box<[u8]>,
    /// Compare ASCII-case-insensitively.
    pub(crate) ci: bool,
    /// The phrase must end at a word boundary.
    pub(crate) word: bool,
    pub(crate) rule: usize,
}

#[derive(Debug)]
pub(crate) struct WordDict {
    /// [`word_key`] of the first word → phrases.
    map: FastMap<u64, Vec<WordEntry>>,
    /// Word-start literals by their first two bytes.
    prefixes: FastMap<[u8; 2], Vec<PrefixEntry>>,
    /// Bit per first two bytes of a word-start literal (65536 bits).
    prefix_pairs: Vec<u64>,
    /// Bit per (first two letters, length) of the lower-cased first word
    /// (one-letter words: bit per letter in `single`), so that almost every
    /// word of a text is rejected without hashing.
    filter: Vec<u64>,
    single: u32,
    /// Bit per first three letters of a key (27 values each: a letter, or
    /// 26 for anything else), tested before the word's end is even known.
    /// Empty (all zero) until something is added.
    first3: Box<[u64; FIRST3_WORDS]>,
    /// The same for word-start literals, case-folded.
    prefix3: Box<[u64; FIRST3_WORDS]>,
}

/// 27³ slots need 308 words; a power of two lets the lookup mask its index
/// instead of bounds-checking it (the words past 308 stay zero).
const FIRST3_WORDS: usize = 512;

/// Letter index of a byte: 0..26 for ASCII letters (either case), 26 for
/// anything else.
const LETTER: [u8; 256] = {
    let mut t = [26u8; 256];
    let mut b = 0;
    while b < 26 {
        t[b'a' as usize + b] = b as u8;
        t[b'A' as usize + b] = b as u8;
        b += 1;
    }
    t
};

/// `LETTER` times 27² and times 27: a slot is three loads and two adds.
const LETTER_729: [u16; 256] = scaled(729);
const LETTER_27: [u16; 256] = scaled(27);

const fn scaled(k: u16) -> [u16; 256] {
    let mut t = [0u16; 256];
    let mut b = 0;
    while b < 256 {
        t[b] = LETTER[b] as u16 * k;
        b += 1;
    }
    t
}

/// Slot of three letter indices in a `first3`-style bit set.
#[inline]
fn slot3(a: u8, b: u8, c: u8) -> usize {
    (usize::from(a) * 27 + usize::from(b)) * 27 + usize::from(c)
}

fn set_bit(bits: &mut [u64; FIRST3_WORDS], slot: usize) {
    bits[slot / 64] |= 1 << (slot % 64);
}

/// Mark `key` (its first three bytes) in `bits`; keys shorter than three
/// bytes match any following byte.
fn mark3(bits: &mut [u64; FIRST3_WORDS], key: &[u8]) {
    let l = |i: usize| key.get(i).map(|&b| LETTER[b as usize]);
    let a = l(0).unwrap_or(26);
    match (l(1), l(2)) {
        (Some(b), Some(c)) => set_bit(bits, slot3(a, b, c)),
        (Some(b), None) => (0..27).for_each(|c| set_bit(bits, slot3(a, b, c))),
        (None, _) => (0..27).for_each(|b| (0..27).for_each(|c| set_bit(bits, slot3(a, b, c)))),
    }
}

/// What may start at a word start: a dictionary phrase, a word-start literal.
#[derive(Debug, Clone, Copy)]
pub(crate) struct StartHint {
    pub(crate) word: bool,
    pub(crate) prefix: bool,
}

impl Default for WordDict {
    fn default() -> Self {
        WordDict {
            map: FastMap::default(),
            prefixes: FastMap::default(),
            prefix_pairs: Vec::new(),
            filter: Vec::new(),
            single: 0,
            first3: Box::new([0; FIRST3_WORDS]),
            prefix3: Box::new([0; FIRST3_WORDS]),
        }
    }
}

impl WordDict {
    pub(crate) fn add(&mut self, phrase: &str, ci: bool, word: bool, rule: usize) {
        let bytes = phrase.as_bytes();
        let first_len = bytes.iter().take_while(|b| b.is_ascii_alphabetic()).count();
        if first_len == 0 {
            return;
        }
        let key: Box<[u8]> = bytes[..first_len].to_ascii_lowercase().into();
        if self.filter.is_empty() {
            self.filter = vec![0; 26 * 26];
        }
        match filter_slot(&key) {
            Some(slot) => self.filter[slot] |= 1 << first_len.min(63),
            None => self.single |= 1 << (key[0] - b'a'),
        }
        // The word ends after the key: pad it with "not a letter" (26) so
        // that "an" does not match every word starting "an".
        let l = |i: usize| key.get(i).map_or(26, |&b| LETTER[b as usize]);
        let (a, b) = (l(0), l(1));
        if b == 26 {
            (0..27).for_each(|c| set_bit(&mut self.first3, slot3(a, b, c)));
        } else {
            set_bit(&mut self.first3, slot3(a, b, l(2)));
        }
        self.map.entry(word_key(&key)).or_default().push(WordEntry {
            phrase: bytes.into(),
            ci,
            word,
            rule,
        });
    }

    /// Add a literal (starting with an ASCII letter, at least two bytes)
    /// that is looked for at the start of every word.
    pub(crate) fn add_prefix(&mut self, literal: &str, rule: usize) {
        let b = literal.as_bytes();
        let key = [b[0], b[1]];
        if self.prefix_pairs.is_empty() {
            self.prefix_pairs = vec![0; 1024];
        }
        let pair = (usize::from(b[0]) << 8) | usize::from(b[1]);
        self.prefix_pairs[pair >> 6] |= 1 << (pair & 63);
        mark3(&mut self.prefix3, b);
        self.prefixes.entry(key).or_default().push(PrefixEntry {
            literal: b.into(),
            rule,
        });
    }

    /// Word-start literals that could begin at `text` (compare before use).
    #[inline]
    pub(crate) fn prefixes_at(&self, text: &[u8]) -> &[PrefixEntry] {
        if text.len() < 2 {
            return &[];
        }
        let b0 = text[0];
        let pair = (usize::from(b0) << 8) | usize::from(text[1]);
        if self
            .prefix_pairs
            .get(pair >> 6)
            .is_none_or(|w| w & (1 << (pair & 63)) == 0)
        {
            return &[];
        }
        self.prefixes.get(&[b0, text[1]]).map_or(&[], Vec::as_slice)
    }

    /// Cheapest test, before the word's end is known: what could start at
    /// `s`, an ASCII letter that starts a word of `text`?
    #[inline]
    pub(crate) fn hint(&self, text: &[u8], s: usize) -> StartHint {
        let slot = match text.get(s..s + 3) {
            Some(&[a, b, c]) => {
                usize::from(LETTER_729[usize::from(a)])
                    + usize::from(LETTER_27[usize::from(b)])
                    + usize::from(LETTER[usize::from(c)])
            }
            _ => {
                let l = |i: usize| LETTER[usize::from(text.get(i).copied().unwrap_or(0))];
                slot3(l(s), l(s + 1), l(s + 2))
            }
        };
        let bit = 1 << (slot % 64);
        let word = (slot / 64) % FIRST3_WORDS;
        StartHint {
            word: self.first3[word] & bit != 0,
            prefix: self.prefix3[word] & bit != 0,
        }
    }

    /// Cheap test: could `word` (ASCII letters) be a key?
    #[inline]
    pub(crate) fn may_contain(&self, word: &[u8]) -> bool {
        match filter_slot(word) {
            Some(slot) => self
                .filter
                .get(slot)
                .is_some_and(|w| w & (1 << word.len().min(63)) != 0),
            None => {
                let letter = (word[0] | 0x20).wrapping_sub(b'a');
                letter < 26 && self.single & (1 << letter) != 0
            }
        }
    }

    /// The phrases whose first word may be `word` (ASCII letters, compared
    /// case-insensitively): compare each phrase before use.
    pub(crate) fn get(&self, word: &[u8]) -> &[WordEntry] {
        self.map.get(&word_key(word)).map_or(&[], Vec::as_slice)
    }
}
