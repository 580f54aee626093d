//! What the evaluation needs from a detector, as two small traits.
//!
//! The metrics code depends only on these, so it can be tested with tiny
//! hand-written detectors; the real engines implement them through the
//! adapters in [`crate::engines`].

/// One entity reported by a PII detector. Offsets are UTF-8 byte offsets
/// into the scanned text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DetectedSpan {
    /// Entity type, e.g. `EMAIL`.
    pub entity: String,
    /// Start byte offset.
    pub start: usize,
    /// End byte offset (exclusive).
    pub end: usize,
}

/// Finds PII entities in a text.
///
/// # Example
/// ```
/// use warden_eval::{DetectedSpan, PiiDetector};
/// struct At;
/// impl PiiDetector for At {
///     fn detect(&self, text: &str) -> Vec<DetectedSpan> {
///         text.find('@').map(|i| DetectedSpan { entity: "AT".into(), start: i, end: i + 1 }).into_iter().collect()
///     }
/// }
/// assert_eq!(At.detect("a@b")[0].start, 1);
/// ```
pub trait PiiDetector: Sync {
    /// All entities found in `text`.
    fn detect(&self, text: &str) -> Vec<DetectedSpan>;
}

/// An injection detector's answer for one text.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Scored {
    /// Score in `[0, 1]`; higher means more likely an injection.
    pub score: f32,
    /// True when the detector's own verdict is not `allow` (flag or block).
    pub flagged: bool,
}

/// Scores a text for prompt injection, given the channel it arrives through.
pub trait InjectionScorer: Sync {
    /// Score and verdict for `text` arriving as `role`.
    fn score(&self, text: &str, role: crate::Role) -> Scored;
}
