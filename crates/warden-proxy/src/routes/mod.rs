//! Route handlers. The vendor routes share one flow: authenticate, limit,
//! inspect and redact, forward, restore and validate, audit.

pub mod anthropic;
pub mod guard;
pub mod openai;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use futures::StreamExt;
use serde_json::{json, Value};

use crate::auth::Principal;
use crate::convo::Api;
use crate::engine::Vault;
use crate::error::{ApiError, Flavor, ProxyError};
use crate::pipeline::{inspect, Inspection};
use crate::respond::{ReqCtx, ToolRecord};
use crate::sse::{SseParser, Transformer};
use crate::state::AppState;
use crate::upstream::Upstream;

/// Request headers passed to the vendor (everything else, notably the
/// client's `Authorization` / `x-api-key`, is dropped).
const FORWARD_REQUEST_HEADERS: &[&str] = &[
    "content-type",
    "accept",
    "user-agent",
    "anthropic-version",
    "anthropic-beta",
    "openai-organization",
    "openai-project",
    "openai-beta",
    "idempotency-key",
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

/// Audit and metrics for one request, written exactly once (also when a
/// stream is dropped by the client).
struct Finisher {
    state: Arc<AppState>,
    record: Mutex<Option<Value>>,
    tools: Mutex<Option<Arc<ReqCtx>>>,
    started: Instant,
    route: &'static str,
    principal: String,
}

impl Finisher {
    fn finish(&self, status: u16, outcome: &str, upstream_ms: Option<u128>) {
        let Some(mut rec) = self.record.lock().ok().and_then(|mut r| r.take()) else {
            return;
        };
        let tools: Vec<ToolRecord> = self
            .tools
            .lock()
            .ok()
            .and_then(|c| {
                c.as_ref()
                    .and_then(|c| c.tools.lock().ok().map(|t| t.clone()))
            })
            .unwrap_or_default();
        rec["tool_calls"] = json!(tools);
        let output = self
            .tools
            .lock()
            .ok()
            .and_then(|c| c.as_ref().map(|c| c.output_findings()))
            .unwrap_or_default();
        rec["output_findings"] = json!(output);
        rec["status"] = json!(status);
        rec["outcome"] = json!(outcome);
        rec["upstream_ms"] = json!(upstream_ms);
        rec["latency_ms"] = json!(self.started.elapsed().as_millis());
        if let Err(e) = self.state.audit.append(&rec) {
            tracing::error!(event = "audit_write_failed", error = %e, "audit record could not be written");
        }
        let status_s = status.to_string();
        self.state.metrics.inc(
            "warden_requests_total",
            &[
                ("route", self.route),
                ("principal", &self.principal),
                ("status", &status_s),
            ],
            1,
        );
        tracing::info!(
            event = "request",
            request_id = rec["request_id"].as_str().unwrap_or(""),
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

/// The shared vendor-route flow.
pub(crate) async fn proxy(
    state: Arc<AppState>,
    api: Api,
    path: &str,
    headers: HeaderMap,
    body: Body,
) -> Response {
    use tracing::Instrument;
    let request_id = uuid::Uuid::new_v4().simple().to_string();
    let span = tracing::info_span!("request", request_id = %request_id, route = api.route());
    proxy_inner(state, api, path, headers, body, request_id)
        .instrument(span)
        .await
}

async fn proxy_inner(
    state: Arc<AppState>,
    api: Api,
    path: &str,
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
    let mut record = json!({
        "event": "proxy_request",
        "request_id": request_id,
        "principal": principal.id,
        "roles": principal.roles,
        "route": route,
    });
    let finisher = Finisher {
        state: state.clone(),
        record: Mutex::new(None),
        tools: Mutex::new(None),
        started,
        route,
        principal: principal.id.clone(),
    };
    let fail = |finisher: &Finisher, record: Value, e: ProxyError| -> Response {
        if let Ok(mut r) = finisher.record.lock() {
            *r = Some(record);
        }
        let status = e.status().as_u16();
        finisher.finish(status, e.code(), None);
        with_request_id(ApiError::new(fl, e).into_response(), &request_id)
    };

    if let Err(e) =
        crate::limits::check_request(&state.store, &state.cfg.limits, &principal.id).await
    {
        count_limited(&state, &principal, &e);
        return fail(&finisher, record, e);
    }
    let bytes = match crate::extract::read_body(body, state.cfg.limits.max_body_bytes).await {
        Ok(b) => b,
        Err(e) => return fail(&finisher, record, e),
    };
    let mut value = match crate::extract::parse_json(&bytes, state.cfg.limits.max_json_depth) {
        Ok(v) => v,
        Err(e) => return fail(&finisher, record, e),
    };
    record["model"] = json!(value.get("model").and_then(Value::as_str));
    let stream = value
        .get("stream")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    record["stream"] = json!(stream);

    if let Err(e) = crate::limits::check_tokens(
        &state.store,
        &state.cfg.limits,
        &principal.id,
        crate::limits::estimate_tokens(bytes.len()),
    )
    .await
    {
        count_limited(&state, &principal, &e);
        return fail(&finisher, record, e);
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
            Err(e) => return fail(&finisher, record, ProxyError::Store(e.to_string())),
        }
    }

    // Scanning is CPU work: large bodies go to the blocking pool so they do not
    // stall the async workers.
    let inspected = if bytes.len() > state.cfg.limits.blocking_scan_threshold_bytes {
        let st = state.clone();
        match tokio::task::spawn_blocking(move || {
            let ins = inspect(&st.engines, &st.cfg, api, &mut value, vault);
            (value, ins)
        })
        .await
        {
            Ok(r) => r,
            Err(_) => {
                return fail(
                    &finisher,
                    record,
                    ProxyError::Internal("scanner task failed".into()),
                )
            }
        }
    } else {
        let ins = inspect(&state.engines, &state.cfg, api, &mut value, vault);
        (value, ins)
    };
    let (value, mut ins) = inspected;
    record_inspection(&state, &principal, &mut record, &ins);
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
        return fail(&finisher, record, ProxyError::Blocked { reasons });
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
    let out_body = match serde_json::to_vec(&value) {
        Ok(b) => b,
        Err(_) => {
            let rec = finisher
                .record
                .lock()
                .ok()
                .and_then(|mut r| r.take())
                .unwrap_or_default();
            return fail(
                &finisher,
                rec,
                ProxyError::Internal("could not serialise the request".into()),
            );
        }
    };
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
            let rec = finisher
                .record
                .lock()
                .ok()
                .and_then(|mut r| r.take())
                .unwrap_or_default();
            return fail(&finisher, rec, e);
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
                rec["upstream_status"] = json!(status.as_u16());
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
            let rec = finisher
                .record
                .lock()
                .ok()
                .and_then(|mut r| r.take())
                .unwrap_or_default();
            return fail(&finisher, rec, e);
        }
    };
    let post = Instant::now();
    let body_bytes = match serde_json::from_slice::<Value>(&full) {
        Ok(mut v) => {
            if status.is_success() {
                ctx.finish_body(&mut v).await;
                if api == Api::Responses {
                    save_vault(&state, &principal.id, &v, &vault).await;
                }
            } else {
                crate::respond::restore_tree(&vault, &mut v);
            }
            serde_json::to_vec(&v).map(Bytes::from).unwrap_or(full)
        }
        Err(_) => full,
    };
    let added = pre_ms + post.elapsed();
    state.metrics.observe(
        "warden_added_latency_seconds",
        &[("route", route), ("phase", "total")],
        added,
    );
    if let Ok(mut r) = finisher.record.lock() {
        if let Some(rec) = r.as_mut() {
            rec["upstream_status"] = json!(status.as_u16());
            rec["added_us"] = json!(added.as_micros() as u64);
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
    record: &mut Value,
    ins: &Inspection,
) {
    for (entity, n) in &ins.detections {
        let action = format!("{:?}", state.cfg.entities.action(entity)).to_lowercase();
        state.metrics.inc(
            "warden_detections_total",
            &[("entity", entity), ("action", &action)],
            *n,
        );
    }
    for (source, s) in &ins.injection {
        let v = format!("{:?}", s.verdict).to_lowercase();
        state.metrics.inc(
            "warden_injection_verdicts_total",
            &[("source", source), ("verdict", &v)],
            1,
        );
        if s.verdict != crate::engine::InjectionVerdict::Allow {
            tracing::warn!(event = "injection", principal = %principal.id, source, verdict = %v, rules = ?s.rules, "prompt injection signal");
        }
    }
    for s in &ins.not_scanned {
        state
            .metrics
            .inc("warden_not_scanned_total", &[("reason", s.reason)], 1);
    }
    record["parts_scanned"] = json!(ins.parts);
    record["detections"] = json!(ins.detections);
    record["redacted"] = json!(ins.redacted);
    record["injection"] = if state.engines.injection_enabled() {
        json!({"verdict": ins.injection_verdict(), "by_source": ins.injection})
    } else {
        json!("not_scanned")
    };
    record["not_scanned"] = json!(ins.not_scanned);
    record["blocked"] = json!(ins.blocked);
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
    path: &str,
    headers: &HeaderMap,
    body: Vec<u8>,
) -> Result<reqwest::Response, ProxyError> {
    let key = upstream.key()?;
    let mut req = state.http.post(format!("{}{path}", upstream.base_url));
    for name in FORWARD_REQUEST_HEADERS {
        if let Some(v) = headers.get(*name) {
            req = req.header(*name, v.clone());
        }
    }
    req = if api == Api::Messages {
        let req = req.header("x-api-key", key);
        if headers.get("anthropic-version").is_none() {
            req.header("anthropic-version", "2023-06-01")
        } else {
            req
        }
    } else {
        req.bearer_auth(key)
    };
    req.header(http::header::CONTENT_TYPE, "application/json")
        .body(body)
        .send()
        .await
        .map_err(upstream_error)
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
        state.metrics.render(),
    )
        .into_response()
}
