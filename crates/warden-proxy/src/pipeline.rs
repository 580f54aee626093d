//! The request side of the guard: walk every position of the canonical view,
//! score it for injection, apply the per-entity action to each finding, and
//! redact in place. Pure CPU work (no I/O), so large bodies can run it on the
//! blocking pool.

use std::collections::BTreeMap;

use base64::Engine as _;
use serde::Serialize;
use serde_json::Value;

use crate::config::{Config, EntityAction};
use crate::convo::{self, Api, Kind, Skipped};
use crate::engine::{Engines, InjectionVerdict, Source, Vault};

/// Injection outcome for one source, aggregated over its parts.
#[derive(Debug, Clone, Serialize)]
pub struct InjectionSummary {
    /// Highest score. Written as the `f64` of the `f32` (e.g. `0.019999999552965164`),
    /// whether serialised directly or through a `serde_json::Value`.
    #[serde(serialize_with = "f32_as_f64")]
    pub score: f32,
    /// Worst verdict.
    pub verdict: InjectionVerdict,
    /// Rule ids that fired (deduplicated).
    pub rules: Vec<String>,
}

/// What inspecting one request found. Counts and ids only, never values.
#[derive(Debug, Default, Serialize)]
pub struct Inspection {
    /// Parts scanned.
    pub parts: usize,
    /// Findings by entity type (all actions).
    pub detections: BTreeMap<String, u64>,
    /// Findings redacted, by entity type.
    pub redacted: BTreeMap<String, u64>,
    /// Reasons to block (`ENTITY (rule)` or `injection:<source> (rules)`).
    pub blocked: Vec<String>,
    /// Injection by source.
    pub injection: BTreeMap<&'static str, InjectionSummary>,
    /// Positions not scanned.
    pub not_scanned: Vec<Skipped>,
    /// The vault with this request's tokens.
    #[serde(skip)]
    pub vault: Vault,
    /// Whose request this is: guard results are cached per principal, so
    /// nobody can time a request to learn what another principal sent.
    #[serde(skip)]
    pub principal: String,
}

impl Inspection {
    /// Overall injection verdict (worst over sources).
    pub fn injection_verdict(&self) -> Option<InjectionVerdict> {
        self.injection
            .values()
            .map(|s| s.verdict)
            .max_by_key(|v| verdict_rank(*v))
    }
}

fn f32_as_f64<S: serde::Serializer>(x: &f32, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_f64(f64::from(*x))
}

fn verdict_rank(v: InjectionVerdict) -> u8 {
    match v {
        InjectionVerdict::Allow => 0,
        InjectionVerdict::Flag => 1,
        InjectionVerdict::Block => 2,
    }
}

/// Inspect and redact `body` in place.
pub fn inspect(
    engines: &Engines,
    cfg: &Config,
    api: Api,
    body: &mut Value,
    vault: Vault,
    principal: &str,
) -> Inspection {
    let conv = convo::request_parts(api, body);
    let mut ins = Inspection {
        vault,
        principal: principal.to_string(),
        not_scanned: conv.skipped,
        ..Default::default()
    };
    for part in &conv.parts {
        let Some(leaf) = convo::get_mut(body, &part.path) else {
            continue;
        };
        match part.kind {
            Kind::Text => {
                if let Value::String(s) = leaf {
                    if let Some(new) = guard_text(engines, cfg, s, None, part.source, &mut ins) {
                        *s = new;
                    }
                }
            }
            Kind::Tree => guard_tree(engines, cfg, leaf, None, part.source, &mut ins),
            Kind::JsonArgs => {
                let Value::String(s) = leaf else { continue };
                match serde_json::from_str::<Value>(s) {
                    Ok(mut v) => {
                        let before = ins.redacted.values().sum::<u64>();
                        guard_tree(engines, cfg, &mut v, None, part.source, &mut ins);
                        if ins.redacted.values().sum::<u64>() != before {
                            if let Ok(new) = serde_json::to_string(&v) {
                                *s = new;
                            }
                        }
                    }
                    // Not JSON (models do produce broken arguments): guard it as text.
                    Err(_) => {
                        if let Some(new) = guard_text(engines, cfg, s, None, part.source, &mut ins)
                        {
                            *s = new;
                        }
                    }
                }
            }
            Kind::Base64Text => {
                let Value::String(s) = leaf else { continue };
                let (prefix, payload) = match s.find(";base64,") {
                    Some(i) if s.starts_with("data:") => s.split_at(i + ";base64,".len()),
                    _ => ("", s.as_str()),
                };
                let decoded = base64::engine::general_purpose::STANDARD
                    .decode(payload.trim())
                    .ok()
                    .and_then(|b| String::from_utf8(b).ok());
                match decoded {
                    Some(text) => {
                        if let Some(new) =
                            guard_text(engines, cfg, &text, None, part.source, &mut ins)
                        {
                            *s = format!(
                                "{prefix}{}",
                                base64::engine::general_purpose::STANDARD.encode(new)
                            );
                        }
                    }
                    None => ins.not_scanned.push(Skipped {
                        path: convo::pointer(&part.path),
                        reason: "undecodable_document",
                    }),
                }
            }
        }
    }
    ins
}

fn guard_tree(
    engines: &Engines,
    cfg: &Config,
    v: &mut Value,
    key: Option<&str>,
    source: Source,
    ins: &mut Inspection,
) {
    match v {
        Value::String(s) => {
            if let Some(new) = guard_text(engines, cfg, s, key, source, ins) {
                *s = new;
            }
        }
        Value::Array(a) => {
            for x in a {
                guard_tree(engines, cfg, x, key, source, ins);
            }
        }
        Value::Object(o) => {
            guard_keys(engines, cfg, o, source, ins);
            for (k, x) in o.iter_mut() {
                // `type` tags are wire vocabulary, not content.
                if k == "type" && x.is_string() {
                    continue;
                }
                guard_tree(engines, cfg, x, Some(k.as_str()), source, ins);
            }
        }
        _ => {}
    }
}

/// Keys shorter than this hold no detectable value (the shortest e-mail
/// address is six bytes) and are not worth a scan.
const MIN_GUARDED_KEY: usize = 6;

/// Object keys of user content are text too (`{"jane@corp.io": "vip"}` in
/// tool arguments): guard them, and rename redacted ones in place, keeping
/// the members' order. A renamed key that collides with another blocks the
/// request rather than drop a member or forward the original.
fn guard_keys(
    engines: &Engines,
    cfg: &Config,
    o: &mut serde_json::Map<String, Value>,
    source: Source,
    ins: &mut Inspection,
) {
    let mut renames: Vec<Option<String>> = Vec::new();
    for (i, k) in o.keys().enumerate() {
        if k.len() < MIN_GUARDED_KEY {
            continue;
        }
        if let Some(new) = guard_text(engines, cfg, k, None, source, ins) {
            renames.resize(i + 1, None);
            renames[i] = Some(new);
        }
    }
    if renames.is_empty() {
        return;
    }
    let old = std::mem::take(o);
    for (i, (k, v)) in old.into_iter().enumerate() {
        let key = renames.get_mut(i).and_then(Option::take).unwrap_or(k);
        if o.insert(key, v).is_some() {
            let reason = "a redacted object key collides with another key".to_string();
            if !ins.blocked.contains(&reason) {
                ins.blocked.push(reason);
            }
        }
    }
}

/// Guard one text; returns the redacted text when anything was redacted.
fn guard_text(
    engines: &Engines,
    cfg: &Config,
    text: &str,
    key: Option<&str>,
    source: Source,
    ins: &mut Inspection,
) -> Option<String> {
    ins.parts += 1;
    if text.is_empty() {
        return None;
    }
    if engines.injection_enabled() {
        let r = engines.injection_request_text(&ins.principal, text, source);
        let e = ins
            .injection
            .entry(source.as_str())
            .or_insert(InjectionSummary {
                score: 0.0,
                verdict: InjectionVerdict::Allow,
                rules: Vec::new(),
            });
        if r.score > e.score {
            e.score = r.score;
        }
        if verdict_rank(r.verdict) > verdict_rank(e.verdict) {
            e.verdict = r.verdict;
        }
        for rule in r.rules {
            if !e.rules.contains(&rule) {
                e.rules.push(rule);
            }
        }
        if r.verdict == InjectionVerdict::Block {
            let reason = format!(
                "prompt injection in {} text ({})",
                source.as_str(),
                e.rules.join(", ")
            );
            if !ins.blocked.contains(&reason) {
                ins.blocked.push(reason);
            }
        }
    }
    let found = engines.scan_request_text(&ins.principal, text, key);
    if found.is_empty() {
        return None;
    }
    let mut to_redact = Vec::new();
    for d in found.iter() {
        if d.score < cfg.entities.min_score {
            continue;
        }
        let action = cfg.entities.action(&d.entity);
        if action == EntityAction::Allow {
            continue;
        }
        *ins.detections.entry(d.entity.to_string()).or_insert(0) += 1;
        match action {
            EntityAction::Block => {
                let reason = format!("{} ({})", d.entity, d.rule);
                if !ins.blocked.contains(&reason) {
                    ins.blocked.push(reason);
                }
            }
            EntityAction::Redact => {
                *ins.redacted.entry(d.entity.to_string()).or_insert(0) += 1;
                to_redact.push(d.clone());
            }
            EntityAction::Log | EntityAction::Allow => {}
        }
    }
    if to_redact.is_empty() {
        return None;
    }
    Some(engines.redact(text, &to_redact, &mut ins.vault))
}
