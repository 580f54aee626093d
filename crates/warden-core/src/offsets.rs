//! Byte offsets (what the engines report) to code point offsets (what Python
//! `str` indexing and the CLI's `start`/`end` use).

/// Converts byte offsets into one text to code point offsets.
///
/// Offsets that arrive in ascending order (a scan's spans do) are converted
/// in one pass over the text; an offset behind the previous one restarts the
/// count, so the result is right for any order. ASCII text is answered
/// without counting at all.
///
/// # Example
/// ```
/// use warden_core::CodePoints;
/// let text = "né jane@x.io";
/// let mut cp = CodePoints::new(text);
/// assert_eq!(cp.at(4), Some(3)); // "né " is 4 bytes, 3 code points
/// assert_eq!(cp.at(text.len()), Some(12));
/// assert_eq!(cp.at(2), None); // inside "é"
/// ```
#[derive(Debug, Clone)]
pub struct CodePoints<'t> {
    text: &'t str,
    ascii: bool,
    byte: usize,
    chars: usize,
}

impl<'t> CodePoints<'t> {
    /// A converter for `text`.
    pub fn new(text: &'t str) -> Self {
        CodePoints {
            text,
            ascii: text.is_ascii(),
            byte: 0,
            chars: 0,
        }
    }

    /// The code point index of byte offset `at`, or `None` when `at` is past
    /// the end or inside a character.
    pub fn at(&mut self, at: usize) -> Option<usize> {
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

#[cfg(test)]
mod tests {
    use super::CodePoints;

    #[test]
    fn any_order_matches_counting_from_the_start() {
        let text = "a€b😀c né\u{200B}x";
        let bounds: Vec<usize> = (0..=text.len())
            .filter(|&i| text.is_char_boundary(i))
            .collect();
        let mut cp = CodePoints::new(text);
        for &b in bounds.iter().rev().chain(&bounds) {
            assert_eq!(cp.at(b), Some(text[..b].chars().count()), "at {b}");
        }
        assert_eq!(cp.at(text.len() + 1), None);
    }
}
