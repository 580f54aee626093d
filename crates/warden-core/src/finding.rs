//! What the scanner reports: an entity's type, where it is, how sure we are and why.
//!
//! A [`Finding`] never holds the matched text. Callers that need the value
//! (redaction, the vault) slice the scanned text with the span themselves, which
//! keeps detected values out of logs and audit records by construction.

use std::sync::Arc;

use serde::Serialize;

/// One detected entity in a scanned text.
///
/// Spans are UTF-8 byte offsets into the text that was passed to the scanner
/// (the *original* text, even when the match was made on a normalised or
/// decoded view of it). They always fall on `char` boundaries.
///
/// # Example
/// ```
/// use warden_core::Scanner;
/// let scanner = Scanner::builtin().unwrap();
/// let text = "mail me at jane.doe@example.org";
/// let found = scanner.scan(text);
/// assert_eq!(found[0].entity(), "EMAIL");
/// assert_eq!(&text[found[0].start..found[0].end], "jane.doe@example.org");
/// ```
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Finding {
    /// Entity type, e.g. `EMAIL`, `CREDIT_CARD`, `API_KEY`.
    pub entity: Arc<str>,
    /// Id of the rule that fired, e.g. `pii.email`.
    pub rule: Arc<str>,
    /// Start byte offset (inclusive) in the original text.
    pub start: usize,
    /// End byte offset (exclusive) in the original text.
    pub end: usize,
    /// Confidence in `[0, 1]`.
    pub score: f32,
    /// Why the score is what it is. Never contains the matched value.
    pub evidence: Vec<Evidence>,
    /// True when the match was only visible after undoing an obfuscation
    /// (zero-width characters, fullwidth digits, tag characters, an encoding).
    pub obfuscated: bool,
}

/// Shortest value the redactor also redacts wherever else it occurs, and
/// the shortest leftover of a partly covered finding the scanner keeps: shorter
/// values ("Ann", "Mr") would hit unrelated words, and a leftover shorter
/// than this would sit redacted in one place and plain in another.
pub(crate) const MIN_VALUE_LEN: usize = 4;

impl Finding {
    /// The entity type as a string slice.
    pub fn entity(&self) -> &str {
        &self.entity
    }

    /// The rule id as a string slice.
    pub fn rule(&self) -> &str {
        &self.rule
    }

    /// Byte length of the span.
    pub fn len(&self) -> usize {
        self.end - self.start
    }

    /// True for an empty span (never produced by the scanner).
    pub fn is_empty(&self) -> bool {
        self.start == self.end
    }
}

/// Result of a validator (checksum or structural check) on a candidate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Checksum {
    /// The validator accepted the value.
    Valid,
    /// The validator rejected the value (such candidates are normally dropped;
    /// kept only when a rule asks for it, with a lowered score).
    Invalid,
    /// The rule has no validator, or the validator cannot decide.
    Unknown,
}

/// One piece of evidence behind a finding's score.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Evidence {
    /// The rule's pattern matched; `score` is the rule's base score.
    Pattern {
        /// Base score of the rule.
        score: f32,
    },
    /// A validator ran.
    Checksum {
        /// Name of the validator, e.g. `luhn`.
        validator: Arc<str>,
        /// Its result.
        result: Checksum,
    },
    /// A context word (from the rule's list, never from the text) was found
    /// near the match, or a JSON key name matched.
    Context {
        /// The context word as written in the rule.
        word: Arc<str>,
        /// Score change it caused.
        delta: f32,
    },
    /// The value is on a deny list.
    DenyList,
    /// The value is glued to the word around it (`ref4111…`): the rule ran
    /// on the text cut where the value meets that word.
    Glued,
    /// The match was found in a decoded or de-obfuscated view.
    Obfuscation {
        /// What was undone, e.g. `zero_width`, `nfkc`, `tag_chars`,
        /// `percent`, `json_escape`, `html_entity`.
        layer: Arc<str>,
    },
}
