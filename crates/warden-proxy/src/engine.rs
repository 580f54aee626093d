//! The one place the proxy touches Warden's engines (scanner, redactor, vault,
//! injection detector, tool-call policy). Everything else in the proxy speaks
//! this module's small vocabulary, so the wire code does not depend on engine
//! internals.
//!
//! INTERIM: until warden-core / warden-injection / warden-policy land, the
//! internals below are a deliberately small stand-in with the same shapes.
//! They are replaced wholesale by the real engines.

use std::collections::BTreeMap;
use std::sync::Arc;

use hmac::{Hmac, Mac};
use regex::Regex;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::Sha256;

use crate::auth::Principal;
use crate::config::Config;
use crate::error::ConfigError;

/// One detected entity: type, rule and byte span in the scanned text. Never the value.
#[derive(Debug, Clone, PartialEq)]
pub struct Detection {
    /// Entity type.
    pub entity: Arc<str>,
    /// Rule id.
    pub rule: Arc<str>,
    /// Start byte.
    pub start: usize,
    /// End byte.
    pub end: usize,
    /// Score in `[0, 1]`.
    pub score: f32,
}

/// Where a piece of text came from, for injection thresholds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Source {
    /// The end user.
    User,
    /// The system prompt / instructions.
    System,
    /// A tool result (untrusted).
    Tool,
    /// A retrieved document (untrusted).
    Document,
}

impl Source {
    /// Lower-case name.
    pub fn as_str(self) -> &'static str {
        match self {
            Source::User => "user",
            Source::System => "system",
            Source::Tool => "tool",
            Source::Document => "document",
        }
    }
}

/// Injection verdict.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum InjectionVerdict {
    /// Below the flag threshold.
    Allow,
    /// Suspicious: recorded, forwarded.
    Flag,
    /// Refused.
    Block,
}

/// Result of scoring one text for injection.
#[derive(Debug, Clone, Serialize)]
pub struct Injection {
    /// Score in `[0, 1]`.
    pub score: f32,
    /// Verdict under the configured thresholds for the source.
    pub verdict: InjectionVerdict,
    /// Rule ids that fired.
    pub rules: Vec<String>,
}

/// A tool-call decision.
#[derive(Debug, Clone, Serialize)]
pub struct CallVerdict {
    /// `allow`, `deny`, `needs_approval` or `error`.
    pub verdict: String,
    /// Rule ids that decided it.
    pub rules: Vec<String>,
    /// Human-readable reasons (no argument values).
    pub messages: Vec<String>,
    /// Approval request id for `needs_approval`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub approval_id: Option<String>,
}

impl CallVerdict {
    /// Whether the call may be released to the agent.
    pub fn allowed(&self) -> bool {
        self.verdict == "allow"
    }

    /// A deny verdict decided by the proxy itself.
    pub fn deny(rule: &str, message: &str) -> Self {
        CallVerdict {
            verdict: "deny".into(),
            rules: vec![rule.into()],
            messages: vec![message.into()],
            approval_id: None,
        }
    }
}

/// The engines, built once at start and shared by every request.
pub struct Engines {
    pii: Vec<(Arc<str>, Arc<str>, Regex)>,
    injection: Regex,
    inj_cfg: crate::config::InjectionConfig,
}

impl Engines {
    /// Build the scanner, detector and policy from config.
    ///
    /// # Errors
    /// Bad packs, rules or policy files.
    pub async fn load(cfg: &Config) -> Result<Engines, ConfigError> {
        let re = |s: &str| {
            Regex::new(s).map_err(|e| ConfigError::Engine {
                what: "packs",
                message: e.to_string(),
            })
        };
        let pii = vec![
            (
                "EMAIL",
                "pii.email",
                re(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}")?,
            ),
            (
                "CREDIT_CARD",
                "pii.credit_card",
                re(r"\b(?:\d[ -]?){12,18}\d\b")?,
            ),
            ("US_SSN", "pii.us_ssn", re(r"\b\d{3}-\d{2}-\d{4}\b")?),
            (
                "PRIVATE_KEY",
                "secret.private_key",
                re(r"-----BEGIN [A-Z ]*PRIVATE KEY-----")?,
            ),
            (
                "API_KEY",
                "secret.openai_key",
                re(r"\bsk-[A-Za-z0-9]{20,}\b")?,
            ),
        ];
        let pii = pii
            .into_iter()
            .map(|(e, r, x)| (Arc::from(e), Arc::from(r), x))
            .collect();
        Ok(Engines {
            pii,
            injection: re(r"(?i)ignore (?:all )?(?:previous|prior|above) instructions")?,
            inj_cfg: cfg.injection.clone(),
        })
    }

    /// Scan one text; `key` is the JSON key it sits under, if any (context).
    pub fn scan(&self, text: &str, _key: Option<&str>) -> Vec<Detection> {
        let mut out = Vec::new();
        for (entity, rule, re) in &self.pii {
            for m in re.find_iter(text) {
                if &**entity == "CREDIT_CARD" && !luhn(m.as_str()) {
                    continue;
                }
                out.push(Detection {
                    entity: entity.clone(),
                    rule: rule.clone(),
                    start: m.start(),
                    end: m.end(),
                    score: 0.9,
                });
            }
        }
        out.sort_by_key(|d| d.start);
        let mut last = 0;
        out.retain(|d| {
            let keep = d.start >= last;
            if keep {
                last = d.end;
            }
            keep
        });
        out
    }

    /// Replace `detections` in `text` by placeholders recorded in `vault`.
    pub fn redact(&self, text: &str, detections: &[Detection], vault: &mut Vault) -> String {
        let mut out = String::with_capacity(text.len());
        let mut at = 0;
        for d in detections {
            let (Some(before), Some(value)) = (text.get(at..d.start), text.get(d.start..d.end))
            else {
                continue;
            };
            out.push_str(before);
            out.push_str(&vault.insert(&d.entity, value));
            at = d.end;
        }
        out.push_str(text.get(at..).unwrap_or(""));
        out
    }

    /// Score one text for prompt injection.
    pub fn injection(&self, text: &str, source: Source) -> Injection {
        let hit = self.injection.is_match(text);
        let score = if hit { 0.95 } else { 0.0 };
        let th = self
            .inj_cfg
            .thresholds
            .get(source.as_str())
            .copied()
            .unwrap_or(crate::config::Threshold {
                flag: 0.5,
                block: 0.85,
            });
        let verdict = if score >= th.block {
            InjectionVerdict::Block
        } else if score >= th.flag {
            InjectionVerdict::Flag
        } else {
            InjectionVerdict::Allow
        };
        Injection {
            score,
            verdict,
            rules: if hit {
                vec!["injection.override.en".into()]
            } else {
                vec![]
            },
        }
    }

    /// Whether injection scoring is on.
    pub fn injection_enabled(&self) -> bool {
        self.inj_cfg.enabled
    }

    /// Validate one tool call for `principal`. `arguments` are the restored values.
    pub async fn validate_call(
        &self,
        principal: &Principal,
        name: &str,
        arguments: &Value,
    ) -> CallVerdict {
        let allowed = match name {
            "lookup_order" => principal
                .roles
                .iter()
                .any(|r| r == "support_agent" || r == "finance"),
            "issue_refund" => {
                principal
                    .roles
                    .iter()
                    .any(|r| r == "support_agent" || r == "finance")
                    && arguments
                        .get("amount")
                        .and_then(|a| a.as_str())
                        .and_then(|a| a.parse::<f64>().ok())
                        .is_some_and(|a| a <= 100.0)
            }
            _ => false,
        };
        if allowed {
            CallVerdict {
                verdict: "allow".into(),
                rules: vec!["role.permitted".into()],
                messages: vec![],
                approval_id: None,
            }
        } else {
            CallVerdict::deny("policy.denied", "the policy does not permit this call")
        }
    }
}

fn luhn(s: &str) -> bool {
    let digits: Vec<u32> = s.chars().filter_map(|c| c.to_digit(10)).collect();
    if digits.len() < 13 {
        return false;
    }
    let sum: u32 = digits
        .iter()
        .rev()
        .enumerate()
        .map(|(i, &d)| {
            if i % 2 == 1 {
                let x = d * 2;
                if x > 9 {
                    x - 9
                } else {
                    x
                }
            } else {
                d
            }
        })
        .sum();
    sum % 10 == 0
}

/// Token -> original for one conversation. Tokens are keyed HMACs of the value,
/// so the same value gets the same placeholder in every message and request.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Vault {
    #[serde(skip)]
    key: Arc<Vec<u8>>,
    map: BTreeMap<String, String>,
}

impl Vault {
    /// An empty vault whose tokens are keyed by `key`.
    pub fn with_key(key: Arc<Vec<u8>>) -> Vault {
        Vault {
            key,
            map: BTreeMap::new(),
        }
    }

    fn insert(&mut self, entity: &str, value: &str) -> String {
        let mut mac = match <Hmac<Sha256> as Mac>::new_from_slice(&self.key) {
            Ok(m) => m,
            Err(_) => return format!("<{entity}_00000000>"),
        };
        mac.update(entity.as_bytes());
        mac.update(&[0]);
        mac.update(value.as_bytes());
        let tag = hex::encode(&mac.finalize().into_bytes()[..4]);
        let token = format!("<{entity}_{tag}>");
        self.map.insert(token.clone(), value.to_string());
        token
    }

    /// Number of tokens.
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// True when empty.
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// Original for a token.
    pub fn get(&self, token: &str) -> Option<&str> {
        self.map.get(token).map(String::as_str)
    }

    /// Add another vault's tokens.
    pub fn merge(&mut self, other: Vault) {
        self.map.extend(other.map);
    }

    /// Put originals back into text.
    pub fn restore(&self, text: &str) -> String {
        self.restore_with(text, false)
    }

    /// Put originals back into the body of a JSON string (originals escaped).
    pub fn restore_json(&self, text: &str) -> String {
        self.restore_with(text, true)
    }

    fn restore_with(&self, text: &str, escaped: bool) -> String {
        if self.map.is_empty() || !text.contains('<') {
            return text.to_string();
        }
        let mut out = String::with_capacity(text.len());
        let mut at = 0;
        for (s, e) in placeholder_spans(text) {
            out.push_str(&text[at..s]);
            match self.map.get(&text[s..e]) {
                Some(orig) if escaped => out.push_str(&escape_json_body(orig)),
                Some(orig) => out.push_str(orig),
                None => out.push_str(&text[s..e]),
            }
            at = e;
        }
        out.push_str(&text[at..]);
        out
    }

    /// Serialize for the store.
    pub fn to_bytes(&self) -> Vec<u8> {
        serde_json::to_vec(&self.map).unwrap_or_default()
    }

    /// Load from the store.
    pub fn from_bytes(key: Arc<Vec<u8>>, bytes: &[u8]) -> Option<Vault> {
        serde_json::from_slice(bytes)
            .ok()
            .map(|map| Vault { key, map })
    }
}

fn escape_json_body(s: &str) -> String {
    let q = serde_json::to_string(s).unwrap_or_default();
    q.get(1..q.len().saturating_sub(1))
        .unwrap_or("")
        .to_string()
}

fn placeholder_re() -> &'static Regex {
    static RE: std::sync::OnceLock<Regex> = std::sync::OnceLock::new();
    RE.get_or_init(|| {
        Regex::new(r"<[A-Z][A-Z0-9_]*_(?:[0-9]+|[0-9a-f]{8})>").unwrap_or_else(|_| unreachable!())
    })
}

/// Byte spans of placeholder-shaped tokens in `text`.
pub fn placeholder_spans(text: &str) -> Vec<(usize, usize)> {
    placeholder_re()
        .find_iter(text)
        .map(|m| (m.start(), m.end()))
        .collect()
}

/// Could `s` (starting with `<`) still grow into a placeholder?
fn is_placeholder_prefix(s: &str) -> bool {
    let b = s.as_bytes();
    if b.first() != Some(&b'<') || b.len() > 64 {
        return false;
    }
    b[1..].iter().enumerate().all(|(i, &c)| {
        if i == 0 {
            c.is_ascii_uppercase()
        } else {
            c.is_ascii_alphanumeric() || c == b'_'
        }
    })
}

/// Restores placeholders in text that arrives in pieces, holding back a
/// possible partial token at a chunk edge.
pub struct Restorer {
    vault: Arc<Vault>,
    escaped: bool,
    pending: String,
}

impl Restorer {
    /// A restorer over `vault`; `json_escaped` escapes originals for JSON string bodies.
    pub fn new(vault: Arc<Vault>, json_escaped: bool) -> Self {
        Restorer {
            vault,
            escaped: json_escaped,
            pending: String::new(),
        }
    }

    /// Feed a chunk; returns what can be released now.
    pub fn feed(&mut self, chunk: &str) -> String {
        self.pending.push_str(chunk);
        let hold = match self.pending.rfind('<') {
            Some(i) if is_placeholder_prefix(&self.pending[i..]) => i,
            _ => self.pending.len(),
        };
        let rest = self.pending.split_off(hold);
        let ready = std::mem::replace(&mut self.pending, rest);
        self.vault.restore_with(&ready, self.escaped)
    }

    /// Release whatever is held.
    pub fn finish(&mut self) -> String {
        let ready = std::mem::take(&mut self.pending);
        self.vault.restore_with(&ready, self.escaped)
    }
}
