//! The one place the proxy touches Warden's engines (scanner, redactor, vault,
//! injection detector, tool-call policy). Everything else in the proxy speaks
//! this module's small vocabulary, so the wire code does not depend on engine
//! internals.
//!
//! Engines: `warden_core::Scanner` + `Redactor` + keyed `Vault` +
//! `StreamRestorer`, `warden_injection::Detector` (with output checks) and
//! `warden_policy::Policy` (sharing the proxy's audit log).

use std::sync::Arc;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use warden_core::{Finding, RedactConfig, Redactor, ScanConfig, Scanner, Strategy};
use warden_injection::{Detector, DetectorConfig, Thresholds};
use warden_policy::{Decision, Policy, PolicyOptions, ToolCall};

use crate::auth::Principal;
use crate::cache::ResultCache;
use crate::config::Config;
use crate::error::ConfigError;

/// Scan results with more findings than this are not cached, so the cache's
/// memory stays bounded by its entry count (a finding is about 100 bytes).
const MAX_CACHED_FINDINGS: usize = 64;

/// One detected entity: type, rule and byte span in the scanned text. Never the value.
pub type Detection = Finding;

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

impl InjectionVerdict {
    /// Lower-case name, as serialised.
    pub fn as_str(self) -> &'static str {
        match self {
            InjectionVerdict::Allow => "allow",
            InjectionVerdict::Flag => "flag",
            InjectionVerdict::Block => "block",
        }
    }
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
    /// Hold placed for an allowed money call (confirm or void it via the guard API).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hold_id: Option<String>,
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
            hold_id: None,
        }
    }
}

/// The engines, built once at start and shared by every request.
pub struct Engines {
    scanner: Scanner,
    redactor: Redactor,
    detector: Option<Detector>,
    policy: Policy,
    /// Request texts' scan results, by JSON key and text (see [`ResultCache`]).
    scans: ResultCache<Arc<Vec<Detection>>>,
    /// Request texts' injection results, by source and text.
    injections: ResultCache<Injection>,
}

fn inj_source(s: Source) -> warden_injection::Source {
    match s {
        Source::User => warden_injection::Source::User,
        Source::System => warden_injection::Source::System,
        Source::Tool => warden_injection::Source::Tool,
        Source::Document => warden_injection::Source::Document,
    }
}

impl Engines {
    /// Build the scanner, detector and policy from config. `audit` is shared
    /// with the policy so its verdict records join the proxy's chain.
    ///
    /// # Errors
    /// Bad packs, rules or policy files.
    pub fn load(
        cfg: &Config,
        audit: Option<Arc<warden_audit::AuditLog>>,
    ) -> Result<Engines, ConfigError> {
        let e = |what: &'static str| {
            move |err: &dyn std::fmt::Display| ConfigError::Engine {
                what,
                message: err.to_string(),
            }
        };
        let mut b = Scanner::builder().builtin_packs();
        if let Some(dir) = &cfg.packs {
            b = b.packs_dir(dir).map_err(|x| e("packs")(&x))?;
        }
        let scan_cfg = ScanConfig {
            min_score: cfg.entities.min_score,
            ..ScanConfig::default()
        };
        let scanner = b.config(scan_cfg).build().map_err(|x| e("packs")(&x))?;
        // Placeholders only: they are what the response side can restore.
        let redactor = Redactor::new(
            scanner.clone(),
            RedactConfig::uniform(Strategy::Placeholder),
            None,
        );
        let detector = if cfg.injection.enabled {
            let mut dc = DetectorConfig::default();
            for (name, t) in &cfg.injection.thresholds {
                let th = Thresholds {
                    flag: t.flag,
                    block: t.block,
                };
                match name.as_str() {
                    "user" => dc.user = th,
                    "system" => dc.system = th,
                    "tool" => dc.tool = th,
                    "document" => dc.document = th,
                    other => {
                        return Err(ConfigError::Invalid(format!(
                            "injection.thresholds.{other}: expected user, system, tool or document"
                        )))
                    }
                }
            }
            let d = match &cfg.packs {
                Some(dir) if dir.join("injection").is_dir() => {
                    Detector::from_dir(&dir.join("injection"))
                }
                _ => Detector::builtin(),
            }
            .map_err(|x| e("injection rules")(&x))?;
            Some(d.with_config(dc))
        } else {
            None
        };
        let opts = PolicyOptions {
            state_url: cfg.policy.state_url.clone(),
            audit,
            ..PolicyOptions::default()
        };
        let policy = match &cfg.policy.file {
            Some(f) => Policy::load_with(f, opts),
            None => Policy::demo(opts),
        }
        .map_err(|x| e("policy")(&x))?;
        Ok(Engines {
            scanner,
            redactor,
            detector,
            policy,
            scans: ResultCache::new(cfg.cache.entries),
            injections: ResultCache::new(cfg.cache.entries),
        })
    }

    /// Scan one text; `key` is the JSON key it sits under, if any (context).
    pub fn scan(&self, text: &str, key: Option<&str>) -> Vec<Detection> {
        self.scanner.scan_with_key(text, key)
    }

    /// [`Engines::scan`] for a request text, through the result cache: the
    /// earlier turns a chat client resends are not scanned again.
    ///
    /// Entries are per `principal`: a hit is faster than a miss, and nobody
    /// may learn by timing what another principal sent.
    pub fn scan_request_text(
        &self,
        principal: &str,
        text: &str,
        key: Option<&str>,
    ) -> Arc<Vec<Detection>> {
        // The key is part of the result (context), so part of the entry's
        // identity; "-" tells a text without one apart from the key "".
        let scope = match key {
            Some(k) => [principal, "k", k],
            None => [principal, "-", ""],
        };
        self.scans.get_or_compute(
            &scope,
            text,
            || Arc::new(self.scan(text, key)),
            |f| f.len() <= MAX_CACHED_FINDINGS,
        )
    }

    /// [`Engines::injection`] for a request text, through the result cache
    /// (per principal, as [`Engines::scan_request_text`]).
    pub fn injection_request_text(&self, principal: &str, text: &str, source: Source) -> Injection {
        self.injections.get_or_compute(
            &[principal, source.as_str()],
            text,
            || self.injection(text, source),
            |_| true,
        )
    }

    /// Result-cache hits and misses so far, scans and injection checks together.
    pub fn cache_stats(&self) -> (u64, u64) {
        let (a, b) = (self.scans.stats(), self.injections.stats());
        (a.0 + b.0, a.1 + b.1)
    }

    /// Replace `detections` in `text` by placeholders recorded in `vault`.
    pub fn redact(&self, text: &str, detections: &[Detection], vault: &mut Vault) -> String {
        self.redactor
            .redact_findings(text, detections, Arc::make_mut(&mut vault.0))
    }

    /// Score one text for prompt injection.
    pub fn injection(&self, text: &str, source: Source) -> Injection {
        let Some(d) = &self.detector else {
            return Injection {
                score: 0.0,
                verdict: InjectionVerdict::Allow,
                rules: Vec::new(),
            };
        };
        let r = d.check(text, inj_source(source));
        let verdict = match r.verdict {
            warden_injection::Verdict::Allow => InjectionVerdict::Allow,
            warden_injection::Verdict::Flag => InjectionVerdict::Flag,
            warden_injection::Verdict::Block => InjectionVerdict::Block,
        };
        let mut rules: Vec<String> = Vec::new();
        for ev in &r.evidence {
            if !rules.iter().any(|x| **x == *ev.rule) {
                rules.push(ev.rule.to_string());
            }
        }
        Injection {
            score: r.score,
            verdict,
            rules,
        }
    }

    /// Whether injection scoring is on.
    pub fn injection_enabled(&self) -> bool {
        self.detector.is_some()
    }

    /// Output-side checks on model text: markdown-image exfiltration, canary
    /// leaks, terminal escapes. Returns the finding kinds (no text).
    pub fn check_output(&self, text: &str) -> Vec<String> {
        warden_injection::output::check_output(text, &[])
            .into_iter()
            .map(|f| {
                serde_json::to_value(f.kind)
                    .ok()
                    .and_then(|v| v.as_str().map(String::from))
                    .unwrap_or_default()
            })
            .collect()
    }

    /// The tool-call policy (approvals and holds API).
    pub fn policy(&self) -> &Policy {
        &self.policy
    }

    /// Validate one tool call for `principal`. `arguments` are the restored values.
    /// A principal with several roles is tried role by role; the first verdict
    /// that is not `deny` wins (a deny places no hold).
    pub async fn validate_call(
        &self,
        principal: &Principal,
        name: &str,
        arguments: &Value,
    ) -> CallVerdict {
        let Some(args) = arguments.as_object() else {
            return CallVerdict::deny(
                "warden.arguments_invalid",
                "the arguments are not a JSON object",
            );
        };
        let call = ToolCall::new(name, args.clone());
        if principal.roles.is_empty() {
            return CallVerdict::deny("warden.no_role", "the caller has no policy role");
        }
        let mut last = None;
        for role in &principal.roles {
            let p = warden_policy::Principal::new(principal.id.clone(), role.clone())
                .with_mfa(principal.mfa);
            let v = self.policy.validate(&p, &call).await;
            let stop = v.verdict != Decision::Deny;
            last = Some(v);
            if stop {
                break;
            }
        }
        match last {
            Some(v) => CallVerdict {
                verdict: v.verdict.as_str().to_string(),
                rules: v.rules,
                messages: v.messages,
                approval_id: v.approval_id,
                hold_id: v.hold_id,
            },
            None => CallVerdict::deny("warden.no_role", "the caller has no policy role"),
        }
    }
}

/// Token -> original for one conversation. Tokens are keyed HMACs of the value,
/// so the same value gets the same placeholder in every message and request.
///
/// Shared behind an `Arc` so that each streamed choice or block can restore from
/// it without copying every original (the request side is the only writer, and
/// it holds the only reference while it writes).
#[derive(Debug, Clone, Default)]
pub struct Vault(Arc<warden_core::Vault>);

impl Vault {
    /// An empty vault whose tokens are keyed by `key`.
    pub fn with_key(key: Arc<Vec<u8>>) -> Vault {
        Vault(Arc::new(warden_core::Vault::with_key(&key)))
    }

    /// Number of tokens.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// True when empty.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Original for a token.
    pub fn get(&self, token: &str) -> Option<&str> {
        self.0.get(token)
    }

    /// Add another vault's tokens. A conflicting token (same token, other
    /// value) leaves this vault unchanged: the conversation's own tokens win.
    pub fn merge(&mut self, other: Vault) {
        if Arc::make_mut(&mut self.0)
            .merge(Arc::unwrap_or_clone(other.0))
            .is_err()
        {
            tracing::warn!(
                event = "vault_conflict",
                "stored vault conflicts with this request's tokens; ignored"
            );
        }
    }

    /// Put originals back into text.
    pub fn restore(&self, text: &str) -> String {
        self.0.restore(text)
    }

    /// Put originals back into the body of a JSON string (originals escaped).
    pub fn restore_json(&self, text: &str) -> String {
        self.0.restore_json(text)
    }

    /// Placeholder-shaped tokens in `text` this vault does not know.
    pub fn unknown_tokens<'t>(&self, text: &'t str) -> Vec<&'t str> {
        self.0.unknown_tokens(text)
    }

    /// Serialize for the store (the key is never written).
    pub fn to_bytes(&self) -> Vec<u8> {
        serde_json::to_vec(&*self.0).unwrap_or_default()
    }

    /// Load from the store.
    pub fn from_bytes(_key: Arc<Vec<u8>>, bytes: &[u8]) -> Option<Vault> {
        serde_json::from_slice(bytes)
            .ok()
            .map(|v| Vault(Arc::new(v)))
    }
}

/// Restores placeholders in text that arrives in pieces, holding back a
/// possible partial token at a chunk edge.
pub struct Restorer(Option<warden_core::StreamRestorer>);

impl Restorer {
    /// A restorer over `vault`; `json_escaped` escapes originals for JSON string bodies.
    pub fn new(vault: Arc<Vault>, json_escaped: bool) -> Self {
        let r = warden_core::StreamRestorer::new(vault.0.clone());
        Restorer(Some(if json_escaped { r.json_escaped() } else { r }))
    }

    /// Feed a chunk; returns what can be released now.
    pub fn feed(&mut self, chunk: &str) -> String {
        self.0.as_mut().map(|r| r.feed(chunk)).unwrap_or_default()
    }

    /// Release whatever is held.
    pub fn finish(&mut self) -> String {
        self.0
            .take()
            .map(warden_core::StreamRestorer::finish)
            .unwrap_or_default()
    }
}
