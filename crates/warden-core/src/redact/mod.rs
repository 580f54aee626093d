//! Reversible redaction: replacing detected values by tokens, masks or
//! digests, the [`Vault`] that remembers placeholders, and restoring
//! originals in whole texts or streams.
//!
//! # Example
//! ```
//! use std::sync::Arc;
//! use warden_core::{redact_findings, Finding, RedactConfig, Vault};
//!
//! let text = "mail jane@example.org or call +1 202 555 0143";
//! let email = Finding {
//!     entity: "EMAIL".into(), rule: "pii.email".into(), start: 5, end: 21,
//!     score: 0.9, evidence: vec![], obfuscated: false,
//! };
//! let mut vault = Vault::new();
//! let redacted = redact_findings(text, &[email], &RedactConfig::default(), None, &mut vault);
//! assert_eq!(redacted, "mail <EMAIL_1> or call +1 202 555 0143");
//! assert_eq!(vault.restore(&redacted), text);
//! ```

pub(crate) mod repeats;
mod strategy;
mod stream;
pub(crate) mod vault;

use std::collections::HashSet;
use std::sync::Arc;

pub use strategy::MAX_TOKEN_LEN;
pub use stream::StreamRestorer;
pub use vault::{is_placeholder, is_placeholder_prefix, Vault};

use crate::config::{RedactConfig, Strategy};
use crate::finding::Finding;

/// Anything that finds entities in a text: the [`Scanner`](crate::Scanner),
/// or a test double built from fixed findings.
///
/// `key` is the JSON object key the text was found under, if any; detectors
/// use it as context (a string under `"ssn"` is more likely an SSN).
/// Returned spans must be byte offsets into `text`; the redactor tolerates
/// unsorted, overlapping or out-of-range spans (it widens or merges them,
/// so a bad span can only redact more, never less).
pub trait Detect {
    /// Finds entities in `text`.
    fn detect(&self, text: &str, key: Option<&str>) -> Vec<Finding>;
}

/// The scanner detects with [`Scanner::scan_with_key`](crate::Scanner::scan_with_key).
impl Detect for crate::Scanner {
    fn detect(&self, text: &str, key: Option<&str>) -> Vec<Finding> {
        self.scan_with_key(text, key)
    }
}

impl<D: Detect + ?Sized> Detect for Arc<D> {
    fn detect(&self, text: &str, key: Option<&str>) -> Vec<Finding> {
        (**self).detect(text, key)
    }
}

impl<D: Detect + ?Sized> Detect for &D {
    fn detect(&self, text: &str, key: Option<&str>) -> Vec<Finding> {
        (**self).detect(text, key)
    }
}

/// The outcome of redacting one text.
#[derive(Debug, Clone, PartialEq)]
pub struct Redaction {
    /// The text with every finding replaced.
    pub text: String,
    /// What was found; spans refer to the text *before* redaction.
    pub findings: Vec<Finding>,
}

/// Scans and redacts in one step: a detector plus a [`RedactConfig`] plus
/// the key for the `hash` strategy.
///
/// Cheap to clone (the detector is shared), `Send + Sync` when the detector
/// is.
///
/// # Example
/// ```
/// use warden_core::{Detect, Finding, RedactConfig, Redactor, Vault};
///
/// // Any detector works; in production this is a `Scanner`.
/// struct Emails;
/// impl Detect for Emails {
///     fn detect(&self, text: &str, _key: Option<&str>) -> Vec<Finding> {
///         text.match_indices("jane@example.org").map(|(at, v)| Finding {
///             entity: "EMAIL".into(), rule: "test.email".into(), start: at, end: at + v.len(),
///             score: 1.0, evidence: vec![], obfuscated: false,
///         }).collect()
///     }
/// }
///
/// let redactor = Redactor::new(Emails, RedactConfig::default(), None);
/// let mut vault = Vault::new();
/// let r = redactor.redact("to jane@example.org, cc jane@example.org", &mut vault);
/// assert_eq!(r.text, "to <EMAIL_1>, cc <EMAIL_1>");
/// assert_eq!(r.findings.len(), 2);
/// ```
#[derive(Clone)]
pub struct Redactor {
    detector: Arc<dyn Detect + Send + Sync>,
    cfg: RedactConfig,
    /// The `hash` strategy's key, absorbed once.
    hash_mac: strategy::KeyedMac,
}

impl std::fmt::Debug for Redactor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The hash key is a secret.
        f.debug_struct("Redactor")
            .field("cfg", &self.cfg)
            .finish_non_exhaustive()
    }
}

impl Redactor {
    /// A redactor over `detector` (normally a [`Scanner`](crate::Scanner)).
    ///
    /// `key` keys the `hash` strategy: with the same key, the same value gets
    /// the same hash token in every call and process. Without one, a random
    /// key is drawn for this redactor, so hash tokens are stable only within
    /// it (a fixed default key would let anyone invert hashes of small value
    /// spaces such as SSNs).
    pub fn new(
        detector: impl Detect + Send + Sync + 'static,
        cfg: RedactConfig,
        key: Option<Vec<u8>>,
    ) -> Redactor {
        Redactor {
            detector: Arc::new(detector),
            cfg,
            hash_mac: strategy::KeyedMac::new(&key.unwrap_or_else(strategy::ephemeral_key)),
        }
    }

    /// The redaction settings.
    pub fn config(&self) -> &RedactConfig {
        &self.cfg
    }

    /// The detector this redactor scans with.
    pub fn detector(&self) -> &(dyn Detect + Send + Sync) {
        &*self.detector
    }

    /// Scans `text` and redacts every finding; placeholders go into `vault`.
    pub fn redact(&self, text: &str, vault: &mut Vault) -> Redaction {
        self.redact_with_key(text, None, vault)
    }

    /// Like [`Redactor::redact`], with the JSON key the text sits under as
    /// context for the detector.
    ///
    /// Every further occurrence of a detected value (4 bytes or longer) is
    /// redacted too, and reported as a finding of the same entity and rule:
    /// a value found once near a context word is no less sensitive where no
    /// context word is near.
    pub fn redact_with_key(&self, text: &str, key: Option<&str>, vault: &mut Vault) -> Redaction {
        let mut findings = self.detector.detect(text, key);
        if let Some(rep) = repeats::Repeats::new([(text, findings.as_slice())]) {
            rep.extend(text, &mut findings);
        }
        let text = self.redact_findings(text, &findings, vault);
        Redaction { text, findings }
    }

    /// Replaces the given findings in `text` according to the configured
    /// strategies (no scanning).
    pub fn redact_findings(&self, text: &str, findings: &[Finding], vault: &mut Vault) -> String {
        replace(
            text,
            findings,
            &self.cfg,
            &self.hash_mac,
            vault,
            &HashSet::new(),
        )
    }

    /// [`Redactor::redact_findings`] that also never hands out a new token
    /// in `avoid` (token-like strings elsewhere in the same document).
    pub(crate) fn redact_findings_avoiding(
        &self,
        text: &str,
        findings: &[Finding],
        vault: &mut Vault,
        avoid: &HashSet<&str>,
    ) -> String {
        replace(text, findings, &self.cfg, &self.hash_mac, vault, avoid)
    }
}

/// Replaces `findings` in `text` according to `cfg`, without a detector.
///
/// Placeholders are recorded in `vault`. `hash_key` keys the `hash`
/// strategy; `None` draws a random key for this call only.
///
/// Spans are made safe before use: clamped to the text, widened to `char`
/// boundaries, and overlapping spans merged into one (taking the entity of
/// the earliest), so a bad span redacts more, never less, and never panics.
///
/// # Example
/// ```
/// use warden_core::{redact_findings, Finding, RedactConfig, Strategy, Vault};
/// let card = Finding {
///     entity: "CREDIT_CARD".into(), rule: "pii.card".into(), start: 5, end: 24,
///     score: 1.0, evidence: vec![], obfuscated: false,
/// };
/// let cfg = RedactConfig::uniform(Strategy::Mask);
/// let out = redact_findings("card 4242 4242 4242 4242.", &[card], &cfg, None, &mut Vault::new());
/// assert_eq!(out, "card **** **** **** 4242.");
/// ```
pub fn redact_findings(
    text: &str,
    findings: &[Finding],
    cfg: &RedactConfig,
    hash_key: Option<&[u8]>,
    vault: &mut Vault,
) -> String {
    let mac = match hash_key {
        Some(k) => strategy::KeyedMac::new(k),
        None => strategy::KeyedMac::new(&strategy::ephemeral_key()),
    };
    replace(text, findings, cfg, &mac, vault, &HashSet::new())
}

fn replace(
    text: &str,
    findings: &[Finding],
    cfg: &RedactConfig,
    hash_mac: &strategy::KeyedMac,
    vault: &mut Vault,
    extra_avoid: &HashSet<&str>,
) -> String {
    let spans = safe_spans(text, findings);
    // Token-like strings already in the text must not be handed out as new
    // tokens, or restoring would replace the user's literal text.
    let own: HashSet<&str> = if !spans.is_empty() && memchr::memchr(b'<', text.as_bytes()).is_some()
    {
        vault::placeholders(text).collect()
    } else {
        HashSet::new()
    };
    let avoid = |t: &str| own.contains(t) || extra_avoid.contains(t);
    let mut out = String::with_capacity(text.len());
    let mut at = 0;
    for (start, end, i) in spans {
        out.push_str(&text[at..start]);
        let entity = findings[i].entity();
        let value = &text[start..end];
        match cfg.strategy_for(entity) {
            Strategy::Placeholder => {
                out.push_str(&vault.placeholder_avoiding(entity, value, avoid))
            }
            Strategy::Mask => {
                let keep = if strategy::is_credential(entity) {
                    0
                } else {
                    cfg.mask_keep_last
                };
                out.push_str(&strategy::mask(value, keep))
            }
            Strategy::Hash => out.push_str(&strategy::hash_token(hash_mac, entity, value)),
            Strategy::Remove => {}
        }
        at = end;
    }
    out.push_str(&text[at..]);
    out
}

/// Sorted, non-overlapping, non-empty spans on char boundaries, each with
/// the index of the finding that names its entity.
fn safe_spans(text: &str, findings: &[Finding]) -> Vec<(usize, usize, usize)> {
    let mut spans: Vec<(usize, usize, usize)> = findings
        .iter()
        .enumerate()
        .filter_map(|(i, f)| {
            let mut start = f.start.min(text.len());
            let mut end = f.end.min(text.len());
            while !text.is_char_boundary(start) {
                start -= 1;
            }
            while !text.is_char_boundary(end) {
                end += 1;
            }
            (start < end).then_some((start, end, i))
        })
        .collect();
    // Earliest first; at the same start the longest first, so it names the merge.
    spans.sort_by(|a, b| a.0.cmp(&b.0).then(b.1.cmp(&a.1)));
    let mut merged: Vec<(usize, usize, usize)> = Vec::with_capacity(spans.len());
    for s in spans {
        match merged.last_mut() {
            Some(last) if s.0 < last.1 => last.1 = last.1.max(s.1),
            _ => merged.push(s),
        }
    }
    merged
}

#[cfg(test)]
mod tests {
    use super::*;

    fn f(entity: &str, start: usize, end: usize) -> Finding {
        Finding {
            entity: entity.into(),
            rule: "t".into(),
            start,
            end,
            score: 1.0,
            evidence: vec![],
            obfuscated: false,
        }
    }

    #[test]
    fn bad_spans_widen_and_merge() {
        let text = "aé-bcd";
        // 2 is inside 'é' (bytes 1..3); 99 is past the end; 4..6 overlaps 3..5.
        let spans = safe_spans(
            text,
            &[f("X", 2, 3), f("Y", 4, 99), f("Z", 3, 5), f("E", 5, 5)],
        );
        assert_eq!(spans, vec![(1, 3, 0), (3, 7, 2)]);
    }
}
