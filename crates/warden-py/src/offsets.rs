//! Byte offsets (what the engines report) to code point offsets (what Python
//! `str` indexing uses).

/// Converts a sequence of byte offsets into one text to code point offsets.
///
/// Offsets that arrive in ascending order (the scanner's spans do) are
/// converted in one pass over the text; an offset behind the previous one
/// restarts the count, so the result is right for any order. ASCII text is
/// answered without counting at all.
pub(crate) struct CodePoints<'t> {
    text: &'t str,
    ascii: bool,
    byte: usize,
    chars: usize,
}

impl<'t> CodePoints<'t> {
    pub(crate) fn new(text: &'t str) -> Self {
        CodePoints {
            text,
            ascii: text.is_ascii(),
            byte: 0,
            chars: 0,
        }
    }

    /// The code point index of byte offset `at`, or `None` when `at` is past
    /// the end or inside a character (an engine bug we refuse to paper over).
    pub(crate) fn at(&mut self, at: usize) -> Option<usize> {
        if self.ascii {
            return (at <= self.text.len()).then_some(at);
        }
        if at < self.byte {
            self.byte = 0;
            self.chars = 0;
        }
        let step = self.text.get(self.byte..at)?;
        self.chars += step.chars().count();
        self.byte = at;
        Some(self.chars)
    }
}
