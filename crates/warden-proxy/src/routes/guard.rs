//! Guard endpoints for clients that do not proxy: scan text or messages, and
//! check one tool call.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use serde_json::{json, Value};

use super::authenticate;
use crate::engine::{Source, Vault};
use crate::error::{ApiError, Flavor, ProxyError};
use crate::extract::{parse_json, read_body};
use crate::state::AppState;

fn fail(e: ProxyError) -> Response {
    ApiError::new(Flavor::OpenAi, e).into_response()
}

/// `POST /v1/guard/scan` — `{"text": "...", "source": "user"}` or
/// `{"messages": [...]}` (OpenAI Chat shape). Returns entities (type, byte
/// span, score, rule — never the value), the injection verdict and the
/// redacted text or messages.
pub async fn scan(State(s): State<Arc<AppState>>, headers: HeaderMap, body: Body) -> Response {
    let principal = match authenticate(&s, &headers, "guard.scan").await {
        Ok(p) => p,
        Err(e) => return fail(e),
    };
    let bytes = match read_body(body, s.cfg.limits.max_body_bytes).await {
        Ok(b) => b,
        Err(e) => return fail(e),
    };
    let v = match parse_json(&bytes, s.cfg.limits.max_json_depth) {
        Ok(v) => v,
        Err(e) => return fail(e),
    };
    let st = s.clone();
    let principal_id = principal.id.clone();
    let work = move || -> Result<Value, ProxyError> {
        if let Some(text) = v.get("text").and_then(Value::as_str) {
            let source = match v.get("source").and_then(Value::as_str).unwrap_or("user") {
                "user" => Source::User,
                "system" => Source::System,
                "tool" => Source::Tool,
                "document" => Source::Document,
                _ => {
                    return Err(ProxyError::BadRequest(
                        "source must be user, system, tool or document".into(),
                    ))
                }
            };
            let found = st.engines.scan(text, None);
            let mut vault = Vault::with_key(st.token_key.clone());
            let redacted = st.engines.redact(text, &found, &mut vault);
            let inj = st.engines.injection(text, source);
            let entities: Vec<Value> = found
                .iter()
                .map(|d| {
                    let cp_start = text.get(..d.start).map_or(0, |p| p.chars().count());
                    let cp_end = text.get(..d.end).map_or(0, |p| p.chars().count());
                    json!({"type": &*d.entity, "start": cp_start, "end": cp_end, "start_byte": d.start, "end_byte": d.end, "score": d.score, "rule": &*d.rule})
                })
                .collect();
            Ok(json!({"entities": entities, "injection": inj, "redacted": redacted}))
        } else if v.get("messages").is_some() {
            let mut body = v;
            let ins = crate::pipeline::inspect(
                &st.engines,
                &st.cfg,
                crate::convo::Api::Chat,
                &mut body,
                Vault::with_key(st.token_key.clone()),
                &principal_id,
            );
            Ok(json!({
                "detections": ins.detections,
                "injection": {"verdict": ins.injection_verdict(), "by_source": ins.injection},
                "blocked": ins.blocked,
                "not_scanned": ins.not_scanned,
                "messages": body["messages"],
            }))
        } else {
            Err(ProxyError::BadRequest(
                "expected \"text\" or \"messages\"".into(),
            ))
        }
    };
    let result = if bytes.len() > s.cfg.limits.blocking_scan_threshold_bytes {
        tokio::task::spawn_blocking(work)
            .await
            .unwrap_or_else(|_| Err(ProxyError::Internal("scanner task failed".into())))
    } else {
        work()
    };
    let status = if result.is_ok() { "200" } else { "400" };
    s.metrics.inc(
        "warden_requests_total",
        &[
            ("route", "guard.scan"),
            ("principal", &principal.id),
            ("status", status),
        ],
        1,
    );
    match result {
        Ok(v) => axum::Json(v).into_response(),
        Err(e) => fail(e),
    }
}

/// `POST /v1/guard/check-call` — `{"name": "...", "arguments": {...}}` (or an
/// OpenAI `tool_calls[]` entry / Anthropic `tool_use` block). Returns the verdict;
/// the role is the caller's.
pub async fn check_call(
    State(s): State<Arc<AppState>>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let principal = match authenticate(&s, &headers, "guard.check_call").await {
        Ok(p) => p,
        Err(e) => return fail(e),
    };
    let bytes = match read_body(body, s.cfg.limits.max_body_bytes).await {
        Ok(b) => b,
        Err(e) => return fail(e),
    };
    let v = match parse_json(&bytes, s.cfg.limits.max_json_depth) {
        Ok(v) => v,
        Err(e) => return fail(e),
    };
    let (name, args) = match (
        v.get("name").or_else(|| v.pointer("/function/name")),
        v.get("arguments")
            .or_else(|| v.pointer("/function/arguments"))
            .or_else(|| v.get("input")),
    ) {
        (Some(Value::String(n)), Some(Value::String(a))) => (
            n.clone(),
            serde_json::from_str::<Value>(a).unwrap_or(Value::Null),
        ),
        (Some(Value::String(n)), Some(a)) => (n.clone(), a.clone()),
        (Some(Value::String(n)), None) => (n.clone(), json!({})),
        _ => {
            return fail(ProxyError::BadRequest(
                "expected {\"name\", \"arguments\"}".into(),
            ))
        }
    };
    let verdict = if args.is_object() {
        s.engines.validate_call(&principal, &name, &args).await
    } else {
        crate::engine::CallVerdict::deny(
            "warden.arguments_invalid",
            "the arguments are not a JSON object",
        )
    };
    s.metrics.inc(
        "warden_tool_calls_total",
        &[
            ("principal", &principal.id),
            ("tool", &name),
            ("verdict", &verdict.verdict),
        ],
        1,
    );
    let rec = json!({"event": "guard_check_call", "principal": principal.id, "tool": name, "verdict": verdict.verdict, "rules": verdict.rules});
    if let Err(e) = s.audit.append(&rec) {
        tracing::error!(event = "audit_write_failed", error = %e, "audit record could not be written");
    }
    axum::Json(verdict).into_response()
}

/// `POST /v1/guard/approvals/{id}` — `{"decision": "approve" | "reject"}`.
/// Only callers holding one of `policy.approver_roles` may decide; an approval
/// is bound to the exact arguments of the call that requested it.
pub async fn approval(
    State(s): State<Arc<AppState>>,
    axum::extract::Path(id): axum::extract::Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let principal = match authenticate(&s, &headers, "guard.approvals").await {
        Ok(p) => p,
        Err(e) => return fail(e),
    };
    if !principal
        .roles
        .iter()
        .any(|r| s.cfg.policy.approver_roles.contains(r))
    {
        return fail(ProxyError::Forbidden(
            "deciding approvals needs an approver role".into(),
        ));
    }
    let v = match read_body(body, 4096).await.and_then(|b| parse_json(&b, 4)) {
        Ok(v) => v,
        Err(e) => return fail(e),
    };
    let policy = s.engines.policy();
    let r = match v.get("decision").and_then(Value::as_str) {
        Some("approve") => policy.approve(&id, &principal.id).await,
        Some("reject") => policy.reject(&id, &principal.id).await,
        _ => {
            return fail(ProxyError::BadRequest(
                "decision must be \"approve\" or \"reject\"".into(),
            ))
        }
    };
    match r {
        // The approval's arguments are not echoed: they may hold customer data.
        Ok(a) => axum::Json(
            json!({"id": a.id, "tool": a.tool, "principal": a.principal, "status": a.status}),
        )
        .into_response(),
        Err(e) => fail(policy_error(&e)),
    }
}

/// `POST /v1/guard/holds/{id}/{action}` with action `confirm` (the agent executed
/// the call) or `void` (it did not). Only the principal the hold belongs to may act.
pub async fn hold(
    State(s): State<Arc<AppState>>,
    axum::extract::Path((id, action)): axum::extract::Path<(String, String)>,
    headers: HeaderMap,
) -> Response {
    let principal = match authenticate(&s, &headers, "guard.holds").await {
        Ok(p) => p,
        Err(e) => return fail(e),
    };
    let policy = s.engines.policy();
    match policy.hold(&id).await {
        Ok(h) if h.principal == principal.id => {}
        Ok(_) => {
            return fail(ProxyError::Forbidden(
                "the hold belongs to another principal".into(),
            ))
        }
        Err(e) => return fail(policy_error(&e)),
    }
    let r = match action.as_str() {
        "confirm" => policy.confirm(&id).await,
        "void" => policy.void(&id).await,
        _ => {
            return fail(ProxyError::BadRequest(
                "action must be confirm or void".into(),
            ))
        }
    };
    match r {
        Ok(h) => axum::Json(h).into_response(),
        Err(e) => fail(policy_error(&e)),
    }
}

fn policy_error(e: &warden_policy::Error) -> ProxyError {
    match e.kind() {
        warden_policy::ErrorKind::NotFound => {
            ProxyError::BadRequest("no such approval or hold".into())
        }
        warden_policy::ErrorKind::Conflict => ProxyError::BadRequest(e.to_string()),
        _ => ProxyError::Store("policy state store unavailable".into()),
    }
}
