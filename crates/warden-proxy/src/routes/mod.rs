//! Route handlers. The vendor routes share one flow: authenticate, limit,
//! inspect and redact, forward, restore and validate, audit.

pub mod anthropic;
pub mod guard;
pub mod openai;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use futures::StreamExt;
use serde::Serialize;
use serde_json::{json, Value};

use crate::auth::Principal;
use crate::convo::Api;
use crate::convo::Skipped;
use crate::engine::InjectionVerdict;
use crate::engine::Vault;
use crate::error::{ApiError, Flavor, ProxyError};
use crate::pipeline::{inspect, InjectionSummary, Inspection};
use crate::respond::{ReqCtx, ToolRecord};
use crate::sse::{SseParser, Transformer};
use crate::state::AppState;
use crate::upstream::Upstream;

/// Request headers passed to the vendor (everything else, notably the
/// client's `Authorization` / `x-api-key`, is dropped).
static FORWARD_REQUEST_HEADERS: [HeaderName; 8] = [
    http::header::ACCEPT,
    http::header::USER_AGENT,
    HeaderName::from_static("anthropic-version"),
    HeaderName::from_static("anthropic-beta"),
    HeaderName::from_static("openai-organization"),
    HeaderName::from_static("openai-project"),
    HeaderName::from_static("openai-beta"),
    HeaderName::from_static("idempotency-key"),
];

/// Response headers passed back to the client.
fn forward_response_header(name: &str) -> bool {
    matches!(
        name,
        "content-type"
            | "x-request-id"
            | "request-id"
            | "retry-after"
            | "openai-processing-ms"
            | "openai-version"
    ) || name.starts_with("x-ratelimit-")
        || name.starts_with("anthropic-ratelimit-")
}

pub(crate) fn flavor(api: Api) -> Flavor {
    if api == Api::Messages {
        Flavor::Anthropic
    } else {
        Flavor::OpenAi
    }
}

/// Authenticate and check the role allow-list; counts failures.
pub(crate) async fn authenticate(
    state: &AppState,
    headers: &HeaderMap,
    route: &str,
) -> Result<Principal, ProxyError> {
    let p = match state.auth.authenticate(headers).await {
        Ok(p) => p,
        Err(e) => {
            let reason = match &e {
                ProxyError::Unauthenticated(r) => r.clone(),
                _ => "error".into(),
            };
            state.metrics.inc(
                "warden_auth_failures_total",
                &[("route", route), ("reason", &reason)],
                1,
            );
            tracing::warn!(event = "auth_failed", route, reason = %reason, "authentication failed");
            let rec =
                json!({"event": "auth_failed", "route": route, "reason": reason, "status": 401});
            if let Err(e) = state.audit.append(&rec) {
                tracing::error!(event = "audit_write_failed", error = %e, "audit record could not be written");
            }
            return Err(e);
        }
    };
    let allowed = &state.cfg.auth.allowed_roles;
    if !allowed.is_empty() && !p.roles.iter().any(|r| allowed.contains(r)) {
        state.metrics.inc(
            "warden_auth_failures_total",
            &[("route", route), ("reason", "role")],
            1,
        );
        tracing::warn!(event = "auth_forbidden", route, principal = %p.id, "principal has no permitted role");
        return Err(ProxyError::Forbidden(
            "no permitted role for this proxy".into(),
        ));
    }
    Ok(p)
}

/// The audit record of one proxied request (`event: proxy_request`), fields in
/// the order they appear in the log. Built as a struct and serialised once, by
/// the audit log; a field not reached yet (say, a request refused before its body
/// was read) is left out. Counts, ids and rule names only, never values.
#[derive(Serialize)]
struct RequestRecord {
    event: &'static str,
    request_id: String,
    principal: String,
    roles: Vec<String>,
    route: &'static str,
    /// Present once the body is parsed (`null` when the body names no model).
    #[serde(skip_serializing_if = "Option::is_none")]
    model: Option<Option<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    stream: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    parts_scanned: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    detections: Option<BTreeMap<String, u64>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    redacted: Option<BTreeMap<String, u64>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    injection: Option<InjectionRecord>,
    #[serde(skip_serializing_if = "Option::is_none")]
    not_scanned: Option<Vec<Skipped>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    blocked: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    upstream_status: Option<u16>,
    #[serde(skip_serializing_if = "Option::is_none")]
    added_us: Option<u64>,
    // The rest is filled in by `Finisher::finish`.
    #[serde(skip_serializing_if = "Option::is_none")]
    tool_calls: Option<Vec<ToolRecord>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    output_findings: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    status: Option<u16>,
    #[serde(skip_serializing_if = "Option::is_none")]
    outcome: Option<&'static str>,
    /// `null` when the vendor was not reached.
    #[serde(skip_serializing_if = "Option::is_none")]
    upstream_ms: Option<Option<u128>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    latency_ms: Option<u128>,
}

/// The record's `injection` field: the verdicts by source, or `"not_scanned"`
/// when the detector is off.
#[derive(Serialize)]
#[serde(untagged)]
enum InjectionRecord {
    NotScanned(&'static str),
    Scanned {
        verdict: Option<InjectionVerdict>,
        by_source: BTreeMap<&'static str, InjectionSummary>,
    },
}

impl RequestRecord {
    fn new(request_id: &str, principal: &Principal, route: &'static str) -> Self {
        RequestRecord {
            event: "proxy_request",
            request_id: request_id.to_string(),
            principal: principal.id.clone(),
            roles: principal.roles.clone(),
            route,
            model: None,
            stream: None,
            parts_scanned: None,
            detections: None,
            redacted: None,
            injection: None,
            not_scanned: None,
            blocked: None,
            upstream_status: None,
            added_us: None,
            tool_calls: None,
            output_findings: None,
            status: None,
            outcome: None,
            upstream_ms: None,
            latency_ms: None,
        }
    }
}

/// Audit and metrics for one request, written exactly once (also when a
/// stream is dropped by the client).
struct Finisher {
    state: Arc<AppState>,
    record: Mutex<Option<RequestRecord>>,
    tools: Mutex<Option<Arc<ReqCtx>>>,
    started: Instant,
    route: &'static str,
    principal: String,
}

impl Finisher {
    fn finish(&self, status: u16, outcome: &'static str, upstream_ms: Option<u128>) {
        let Some(mut rec) = self.record.lock().ok().and_then(|mut r| r.take()) else {
            return;
        };
        let ctx = self.tools.lock().ok().and_then(|c| c.clone());
        let (tools, output) = match ctx {
            Some(c) => (
                c.tools.lock().map(|t| t.clone()).unwrap_or_default(),
                c.output_findings(),
            ),
            None => (Vec::new(), Vec::new()),
        };
        rec.tool_calls = Some(tools);
        rec.output_findings = Some(output);
        rec.status = Some(status);
        rec.outcome = Some(outcome);
        rec.upstream_ms = Some(upstream_ms);
        rec.latency_ms = Some(self.started.elapsed().as_millis());
        if let Err(e) = self.state.audit.append(&rec) {
            tracing::error!(event = "audit_write_failed", error = %e, "audit record could not be written");
        }
        // The status label without an allocation (any u16 Warden answers is a valid code).
        let code = http::StatusCode::from_u16(status);
        let owned;
        let status_s = match &code {
            Ok(c) => c.as_str(),
            Err(_) => {
                owned = status.to_string();
                owned.as_str()
            }
        };
        self.state.metrics.inc(
            "warden_requests_total",
            &[
                ("route", self.route),
                ("principal", &self.principal),
                ("status", status_s),
            ],
            1,
        );
        tracing::info!(
            event = "request",
            request_id = rec.request_id.as_str(),
            route = self.route,
            principal = %self.principal,
            status,
            outcome,
            latency_ms = self.started.elapsed().as_millis() as u64,
            "request finished"
        );
    }
}

impl Drop for Finisher {
    fn drop(&mut self) {
        // A client that hangs up mid-stream still gets its audit record.
        self.finish(499, "client_disconnected", None);
    }
}

/// A fresh request id: a UUID v4 in simple form (32 hex digits), unique within
/// the process, without a system call per request. The random bits come from a
/// per-process seed drawn once from the OS, mixed with a request counter; 64 of
/// them are a bijection of the counter, so two requests never share an id.
pub(crate) fn new_request_id() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::sync::OnceLock;
    static SEED: OnceLock<(u64, u64)> = OnceLock::new();
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let (a, b) = *SEED.get_or_init(|| uuid::Uuid::new_v4().as_u64_pair());
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let unique = splitmix64(n.wrapping_add(a)).to_le_bytes();
    let other = splitmix64(n ^ b).to_le_bytes();
    // Bytes 6 and 8 carry the version and variant bits: keep `unique` out of them.
    let bytes = [
        unique[0], unique[1], unique[2], unique[3], unique[4], unique[5], other[0], other[1],
        other[2], unique[6], unique[7], other[3], other[4], other[5], other[6], other[7],
    ];
    uuid::Builder::from_random_bytes(bytes)
        .into_uuid()
        .simple()
        .to_string()
}

/// The SplitMix64 finaliser: a bijection on `u64` that scatters counter values.
fn splitmix64(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// The shared vendor-route flow.
pub(crate) async fn proxy(
    state: Arc<AppState>,
    api: Api,
    path: &'static str,
    headers: HeaderMap,
    body: Body,
) -> Response {
    use tracing::Instrument;
    let request_id = new_request_id();
    let span = tracing::info_span!("request", request_id = %request_id, route = api.route());
    proxy_inner(state, api, path, headers, body, request_id)
        .instrument(span)
        .await
}

async fn proxy_inner(
    state: Arc<AppState>,
    api: Api,
    path: &'static str,
    headers: HeaderMap,
    body: Body,
    request_id: String,
) -> Response {
    let started = Instant::now();
    let fl = flavor(api);
    let route = api.route();

    let principal = match authenticate(&state, &headers, route).await {
        Ok(p) => p,
        Err(e) => return with_request_id(ApiError::new(fl, e).into_response(), &request_id),
    };
    let mut record = RequestRecord::new(&request_id, &principal, route);
    let finisher = Finisher {
        state: state.clone(),
        record: Mutex::new(None),
        tools: Mutex::new(None),
        started,
        route,
        principal: principal.id.clone(),
    };
    // `record` is `None` when it is already with the finisher.
    let fail = |finisher: &Finisher, record: Option<RequestRecord>, e: ProxyError| -> Response {
        if let Some(record) = record {
            if let Ok(mut r) = finisher.record.lock() {
                *r = Some(record);
            }
        }
        let status = e.status().as_u16();
        finisher.finish(status, e.code(), None);
        with_request_id(ApiError::new(fl, e).into_response(), &request_id)
    };

    if let Err(e) =
        crate::limits::check_request(&state.store, &state.cfg.limits, &principal.id).await
    {
        count_limited(&state, &principal, &e);
        return fail(&finisher, Some(record), e);
    }
    let bytes = match crate::extract::read_body(body, state.cfg.limits.max_body_bytes).await {
        Ok(b) => b,
        Err(e) => return fail(&finisher, Some(record), e),
    };
    let mut value = match crate::extract::parse_json(&bytes, state.cfg.limits.max_json_depth) {
        Ok(v) => v,
        Err(e) => return fail(&finisher, Some(record), e),
    };
    record.model = Some(value.get("model").and_then(Value::as_str).map(String::from));
    let stream = value
        .get("stream")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    record.stream = Some(stream);

    if let Err(e) = crate::limits::check_tokens(
        &state.store,
        &state.cfg.limits,
        &principal.id,
        crate::limits::estimate_tokens(bytes.len()),
    )
    .await
    {
        count_limited(&state, &principal, &e);
        return fail(&finisher, Some(record), e);
    }

    // Vault: keyed tokens make placeholders stable across turns; for history held
    // at the vendor (Responses `previous_response_id`) the vault is loaded from the store.
    let mut vault = Vault::with_key(state.token_key.clone());
    let prev = value
        .get("previous_response_id")
        .and_then(Value::as_str)
        .map(String::from);
    if let Some(prev) = &prev {
        match state.store.get(&vault_key(&principal.id, prev)).await {
            Ok(Some(b)) => {
                if let Some(v) = Vault::from_bytes(state.token_key.clone(), &b) {
                    vault.merge(v);
                }
            }
            Ok(None) => {}
            Err(e) => return fail(&finisher, Some(record), ProxyError::Store(e.to_string())),
        }
    }

    // Scanning is CPU work: large bodies go to the blocking pool so they do not
    // stall the async workers.
    let inspected = if bytes.len() > state.cfg.limits.blocking_scan_threshold_bytes {
        let st = state.clone();
        let principal_id = principal.id.clone();
        match tokio::task::spawn_blocking(move || {
            let ins = inspect(&st.engines, &st.cfg, api, &mut value, vault, &principal_id);
            (value, ins)
        })
        .await
        {
            Ok(r) => r,
            Err(_) => {
                return fail(
                    &finisher,
                    Some(record),
                    ProxyError::Internal("scanner task failed".into()),
                )
            }
        }
    } else {
        let ins = inspect(
            &state.engines,
            &state.cfg,
            api,
            &mut value,
            vault,
            &principal.id,
        );
        (value, ins)
    };
    let (value, mut ins) = inspected;
    record_inspection(&state, &principal, &mut record, &mut ins);
    if !ins.blocked.is_empty() {
        let reasons = std::mem::take(&mut ins.blocked);
        for r in &reasons {
            state.metrics.inc(
                "warden_blocked_requests_total",
                &[("principal", &principal.id), ("reason", block_label(r))],
                1,
            );
        }
        tracing::warn!(event = "request_blocked", principal = %principal.id, reasons = ?reasons, "request blocked");
        return fail(&finisher, Some(record), ProxyError::Blocked { reasons });
    }

    let vault = Arc::new(std::mem::take(&mut ins.vault));
    let ctx = Arc::new(ReqCtx {
        state: state.clone(),
        principal: principal.clone(),
        request_id: request_id.clone(),
        api,
        vault: vault.clone(),
        tools: Mutex::new(Vec::new()),
        output: Mutex::new(String::new()),
    });
    if let Ok(mut t) = finisher.tools.lock() {
        *t = Some(ctx.clone());
    }
    if let Ok(mut r) = finisher.record.lock() {
        *r = Some(record);
    }

    let upstream = if api == Api::Messages {
        &state.anthropic
    } else {
        &state.openai
    };
    // Redaction changes little in size: one allocation for the whole body.
    let out_body = crate::jsonw::to_vec(&value, bytes.len() + bytes.len() / 8 + 64);
    drop(value);
    let pre_ms = started.elapsed();
    let sent = Instant::now();
    let resp = match send(&state, upstream, api, path, &headers, out_body).await {
        Ok(r) => r,
        Err(e) => {
            state.metrics.inc(
                "warden_upstream_errors_total",
                &[("route", route), ("kind", e.code())],
                1,
            );
            return fail(&finisher, None, e);
        }
    };
    let upstream_latency = sent.elapsed();
    state.metrics.observe(
        "warden_upstream_latency_seconds",
        &[("route", route)],
        upstream_latency,
    );
    let status = resp.status();
    let mut out_headers = HeaderMap::new();
    for (k, v) in resp.headers() {
        if forward_response_header(k.as_str()) {
            out_headers.append(k.clone(), v.clone());
        }
    }
    let is_sse = resp
        .headers()
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("text/event-stream"));

    if is_sse && status.is_success() {
        state.metrics.observe(
            "warden_added_latency_seconds",
            &[("route", route), ("phase", "request")],
            pre_ms,
        );
        if let Ok(mut r) = finisher.record.lock() {
            if let Some(rec) = r.as_mut() {
                rec.upstream_status = Some(status.as_u16());
            }
        }
        let body = stream_body(
            ctx,
            finisher,
            resp,
            prev.is_some() || api == Api::Responses,
            upstream_latency,
        );
        let mut r = Response::new(body);
        *r.status_mut() = status;
        *r.headers_mut() = out_headers;
        r.headers_mut().insert(
            http::header::CACHE_CONTROL,
            HeaderValue::from_static("no-cache"),
        );
        return with_request_id(r, &request_id);
    }

    let full = match read_upstream(resp, state.cfg.limits.max_body_bytes.saturating_mul(8)).await {
        Ok(b) => b,
        Err(e) => {
            state.metrics.inc(
                "warden_upstream_errors_total",
                &[("route", route), ("kind", e.code())],
                1,
            );
            return fail(&finisher, None, e);
        }
    };
    let post = Instant::now();
    let body_bytes = if ctx.pass_body(status.is_success(), &full) {
        full
    } else {
        match serde_json::from_slice::<Value>(&full) {
            Ok(mut v) => {
                if status.is_success() {
                    ctx.finish_body(&mut v).await;
                    if api == Api::Responses {
                        save_vault(&state, &principal.id, &v, &vault).await;
                    }
                } else {
                    crate::respond::restore_tree(&vault, &mut v);
                }
                Bytes::from(crate::jsonw::to_vec(&v, full.len() + full.len() / 8 + 64))
            }
            Err(_) => full,
        }
    };
    let added = pre_ms + post.elapsed();
    state.metrics.observe(
        "warden_added_latency_seconds",
        &[("route", route), ("phase", "total")],
        added,
    );
    if let Ok(mut r) = finisher.record.lock() {
        if let Some(rec) = r.as_mut() {
            rec.upstream_status = Some(status.as_u16());
            rec.added_us = Some(added.as_micros() as u64);
        }
    }
    if !status.is_success() {
        state.metrics.inc(
            "warden_upstream_errors_total",
            &[("route", route), ("kind", status.as_str())],
            1,
        );
    }
    finisher.finish(
        status.as_u16(),
        if status.is_success() {
            "ok"
        } else {
            "upstream_error"
        },
        Some(upstream_latency.as_millis()),
    );
    let mut r = Response::new(Body::from(body_bytes));
    *r.status_mut() = status;
    *r.headers_mut() = out_headers;
    with_request_id(r, &request_id)
}

fn count_limited(state: &AppState, principal: &Principal, e: &ProxyError) {
    if let ProxyError::RateLimited { what, .. } = e {
        state.metrics.inc(
            "warden_rate_limited_total",
            &[("principal", &principal.id), ("limit", what)],
            1,
        );
        tracing::warn!(event = "rate_limited", principal = %principal.id, limit = *what, "rate limit exceeded");
    }
}

fn block_label(reason: &str) -> &str {
    if reason.starts_with("prompt injection") {
        "injection"
    } else {
        reason.split(' ').next().unwrap_or("entity")
    }
}

fn record_inspection(
    state: &AppState,
    principal: &Principal,
    record: &mut RequestRecord,
    ins: &mut Inspection,
) {
    for (entity, n) in &ins.detections {
        state.metrics.inc(
            "warden_detections_total",
            &[
                ("entity", entity),
                ("action", state.cfg.entities.action(entity).as_str()),
            ],
            *n,
        );
    }
    for (source, s) in &ins.injection {
        let v = s.verdict.as_str();
        state.metrics.inc(
            "warden_injection_verdicts_total",
            &[("source", source), ("verdict", v)],
            1,
        );
        if s.verdict != InjectionVerdict::Allow {
            tracing::warn!(event = "injection", principal = %principal.id, source, verdict = %v, rules = ?s.rules, "prompt injection signal");
        }
    }
    for s in &ins.not_scanned {
        state
            .metrics
            .inc("warden_not_scanned_total", &[("reason", s.reason)], 1);
    }
    // The record takes the counts: after this the request only needs `blocked` and the vault.
    record.parts_scanned = Some(ins.parts);
    record.detections = Some(std::mem::take(&mut ins.detections));
    record.redacted = Some(std::mem::take(&mut ins.redacted));
    record.injection = Some(if state.engines.injection_enabled() {
        InjectionRecord::Scanned {
            verdict: ins.injection_verdict(),
            by_source: std::mem::take(&mut ins.injection),
        }
    } else {
        InjectionRecord::NotScanned("not_scanned")
    });
    record.not_scanned = Some(std::mem::take(&mut ins.not_scanned));
    record.blocked = Some(ins.blocked.clone());
}

pub(crate) fn vault_key(principal: &str, response_id: &str) -> String {
    format!("warden:vault:{principal}:{response_id}")
}

async fn save_vault(state: &AppState, principal: &str, resp: &Value, vault: &Vault) {
    let Some(id) = resp.get("id").and_then(Value::as_str) else {
        return;
    };
    save_vault_id(state, principal, id, vault).await;
}

async fn save_vault_id(state: &AppState, principal: &str, id: &str, vault: &Vault) {
    if vault.is_empty() {
        return;
    }
    let ttl = Duration::from_secs(state.cfg.store.vault_ttl_secs);
    if let Err(e) = state
        .store
        .put(&vault_key(principal, id), vault.to_bytes(), ttl)
        .await
    {
        tracing::error!(event = "vault_store_failed", error = %e, "conversation vault could not be stored");
    }
}

fn with_request_id(mut r: Response, id: &str) -> Response {
    if let Ok(v) = HeaderValue::from_str(id) {
        r.headers_mut()
            .insert(HeaderName::from_static("x-warden-request-id"), v);
    }
    r
}

async fn send(
    state: &AppState,
    upstream: &Upstream,
    api: Api,
    path: &'static str,
    headers: &HeaderMap,
    body: Vec<u8>,
) -> Result<reqwest::Response, ProxyError> {
    let cred = upstream.credential()?;
    let url = upstream
        .url(path)
        .ok_or_else(|| ProxyError::Upstream("the vendor URL is invalid".into()))?;
    let mut out = HeaderMap::with_capacity(FORWARD_REQUEST_HEADERS.len() + 3);
    for name in &FORWARD_REQUEST_HEADERS {
        if let Some(v) = headers.get(name) {
            out.insert(name.clone(), v.clone());
        }
    }
    // The body is the JSON Warden wrote, whatever the client declared.
    out.insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    if api == Api::Messages {
        out.insert(HeaderName::from_static("x-api-key"), cred.raw.clone());
        out.entry(HeaderName::from_static("anthropic-version"))
            .or_insert(HeaderValue::from_static("2023-06-01"));
    } else {
        out.insert(http::header::AUTHORIZATION, cred.bearer.clone());
    }
    let mut req = reqwest::Request::new(http::Method::POST, url);
    *req.headers_mut() = out;
    *req.body_mut() = Some(body.into());
    state.http.execute(req).await.map_err(upstream_error)
}

pub(crate) fn upstream_error(e: reqwest::Error) -> ProxyError {
    if e.is_timeout() {
        ProxyError::UpstreamTimeout
    } else if e.is_connect() {
        ProxyError::Upstream("could not connect to the vendor".into())
    } else {
        ProxyError::Upstream("the vendor connection failed".into())
    }
}

async fn read_upstream(resp: reqwest::Response, max: usize) -> Result<Bytes, ProxyError> {
    let mut buf = Vec::new();
    let mut s = resp.bytes_stream();
    while let Some(chunk) = s.next().await {
        let chunk = chunk.map_err(upstream_error)?;
        if buf.len() + chunk.len() > max {
            return Err(ProxyError::Upstream("vendor response too large".into()));
        }
        buf.extend_from_slice(&chunk);
    }
    Ok(Bytes::from(buf))
}

struct StreamState {
    ctx: Arc<ReqCtx>,
    finisher: Finisher,
    upstream: futures::stream::BoxStream<'static, Result<Bytes, reqwest::Error>>,
    parser: SseParser,
    t: Transformer,
    done: bool,
    save_vault: bool,
    upstream_latency: Duration,
}

fn stream_body(
    ctx: Arc<ReqCtx>,
    finisher: Finisher,
    resp: reqwest::Response,
    save_vault: bool,
    upstream_latency: Duration,
) -> Body {
    let max = ctx.state.cfg.limits.max_stream_buffer_bytes;
    let st = StreamState {
        t: Transformer::new(ctx.clone(), ctx.state.cfg.limits.max_tool_call_bytes),
        ctx,
        finisher,
        upstream: resp.bytes_stream().boxed(),
        parser: SseParser::new(max),
        done: false,
        save_vault,
        upstream_latency,
    };
    let s = futures::stream::unfold(st, |mut st| async move {
        if st.done {
            return None;
        }
        loop {
            let mut out = Vec::new();
            let error = match st.upstream.next().await {
                Some(Ok(chunk)) => match st.parser.push(&chunk) {
                    Ok(events) => {
                        let t0 = Instant::now();
                        for ev in events {
                            st.t.on_event(ev, &mut out).await;
                        }
                        st.ctx.state.metrics.observe(
                            "warden_added_latency_seconds",
                            &[("route", st.ctx.api.route()), ("phase", "stream_chunk")],
                            t0.elapsed(),
                        );
                        if out.is_empty() {
                            continue;
                        }
                        return Some((Ok::<Bytes, std::io::Error>(Bytes::from(out)), st));
                    }
                    Err(e) => Some(e.to_string()),
                },
                Some(Err(e)) => Some(upstream_error(e).to_string()),
                None => None,
            };
            if error.is_none() {
                if let Some(ev) = st.parser.finish() {
                    st.t.on_event(ev, &mut out).await;
                }
            }
            let ok = st.t.finish(error.as_deref(), &mut out).await;
            if st.save_vault {
                if let Some(id) = st.t.response_id().map(String::from) {
                    save_vault_id(&st.ctx.state, &st.ctx.principal.id, &id, &st.ctx.vault).await;
                }
            }
            if !ok {
                st.ctx.state.metrics.inc(
                    "warden_upstream_errors_total",
                    &[("route", st.ctx.api.route()), ("kind", "stream_broken")],
                    1,
                );
            }
            st.finisher.finish(
                200,
                if ok { "ok" } else { "upstream_stream_broken" },
                Some(st.upstream_latency.as_millis()),
            );
            st.done = true;
            return Some((Ok(Bytes::from(out)), st));
        }
    });
    Body::from_stream(s)
}

/// `GET /healthz`: the process is up.
pub(crate) async fn healthz() -> &'static str {
    "ok"
}

/// `GET /readyz`: the store answers.
pub(crate) async fn readyz(
    axum::extract::State(state): axum::extract::State<Arc<AppState>>,
) -> Response {
    match state.store.ping().await {
        Ok(()) => (StatusCode::OK, "ready").into_response(),
        Err(_) => (StatusCode::SERVICE_UNAVAILABLE, "store unavailable").into_response(),
    }
}

/// `GET /metrics`: Prometheus text.
pub(crate) async fn metrics(
    axum::extract::State(state): axum::extract::State<Arc<AppState>>,
) -> Response {
    (
        [(
            http::header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; version=0.0.4"),
        )],
        {
            let (hits, misses) = state.engines.cache_stats();
            let m = &state.metrics;
            m.set("warden_guard_cache_total", &[("result", "hit")], hits);
            m.set("warden_guard_cache_total", &[("result", "miss")], misses);
            m.render()
        },
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_ids_are_unique_uuid_v4() {
        let mut seen = std::collections::HashSet::new();
        for _ in 0..10_000 {
            let id = new_request_id();
            let u = uuid::Uuid::parse_str(&id).unwrap();
            assert_eq!(u.get_version_num(), 4);
            assert_eq!(u.get_variant(), uuid::Variant::RFC4122);
            assert_eq!(id.len(), 32);
            assert!(seen.insert(id));
        }
    }

    /// The record, serialised directly, is byte-for-byte what the JSON tree it
    /// replaced produced (same key order, scores as the `f64` of the `f32`).
    #[test]
    fn request_record_matches_the_json_tree_shape() {
        let p = Principal::anonymous();
        let mut rec = RequestRecord::new("abc", &p, "chat.completions");
        let early = serde_json::to_string(&rec).unwrap();
        let tree = json!({"event": "proxy_request", "request_id": "abc", "principal": "anonymous",
            "roles": ["support_agent"], "route": "chat.completions"});
        assert_eq!(early, tree.to_string());

        let summary = InjectionSummary {
            score: 0.02,
            verdict: InjectionVerdict::Flag,
            rules: vec!["inj.rule".into()],
        };
        let by_source: BTreeMap<&'static str, InjectionSummary> =
            [("user", summary.clone())].into_iter().collect();
        let counts: BTreeMap<String, u64> = [("EMAIL".to_string(), 2)].into_iter().collect();
        let skipped = vec![Skipped {
            path: "/messages/1/content/1".into(),
            reason: "image",
        }];
        let tools = vec![ToolRecord {
            tool: "issue_refund".into(),
            verdict: "deny".into(),
            rules: vec!["refund.within_refundable".into()],
            approval_id: None,
            hold_id: None,
        }];
        rec.model = Some(None);
        rec.stream = Some(false);
        rec.parts_scanned = Some(3);
        rec.detections = Some(counts.clone());
        rec.redacted = Some(counts.clone());
        rec.injection = Some(InjectionRecord::Scanned {
            verdict: Some(InjectionVerdict::Flag),
            by_source: by_source.clone(),
        });
        rec.not_scanned = Some(skipped.clone());
        rec.blocked = Some(Vec::new());
        rec.upstream_status = Some(200);
        rec.added_us = Some(380);
        rec.tool_calls = Some(tools.clone());
        rec.output_findings = Some(Vec::new());
        rec.status = Some(200);
        rec.outcome = Some("ok");
        rec.upstream_ms = Some(None);
        rec.latency_ms = Some(413);
        let mut tree = tree;
        tree["model"] = json!(None::<&str>);
        tree["stream"] = json!(false);
        tree["parts_scanned"] = json!(3);
        tree["detections"] = json!(counts);
        tree["redacted"] = json!(counts);
        tree["injection"] =
            json!({"verdict": Some(InjectionVerdict::Flag), "by_source": by_source});
        tree["not_scanned"] = json!(skipped);
        tree["blocked"] = json!(Vec::<String>::new());
        tree["upstream_status"] = json!(200);
        tree["added_us"] = json!(380);
        tree["tool_calls"] = json!(tools);
        tree["output_findings"] = json!(Vec::<String>::new());
        tree["status"] = json!(200);
        tree["outcome"] = json!("ok");
        tree["upstream_ms"] = json!(None::<u128>);
        tree["latency_ms"] = json!(413);
        let direct = serde_json::to_string(&rec).unwrap();
        assert_eq!(direct, tree.to_string());
        assert!(
            direct.contains("\"score\":0.019999999552965164"),
            "{direct}"
        );

        rec.injection = Some(InjectionRecord::NotScanned("not_scanned"));
        tree["injection"] = json!("not_scanned");
        assert_eq!(serde_json::to_string(&rec).unwrap(), tree.to_string());
    }
}
