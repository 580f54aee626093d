//! Test harness: a real fake vendor (axum on 127.0.0.1:0 speaking OpenAI Chat,
//! Responses, Embeddings, Models and Anthropic Messages, streaming and not) and
//! the real proxy on another loopback port, driven with a real reqwest client.
//!
//! The vendor's behaviour is chosen by the `model` field:
//! - `echo` (default): replies with the text of the last user turn;
//! - `tool`: the last user text is `{"name":..,"arguments":{..}}` and comes back as a tool call
//!   (two calls if the text is a JSON array);
//! - `slow`: waits 3 s before answering (upstream timeout tests);
//! - `broken`: streams a little, then drops the connection;
//! - `stall`: streams half, then goes silent for 3 s (read timeout mid-stream);
//! - `error500`: answers 500 with a vendor error;
//! - `redirect`: answers 307 to the same URL (a client that follows it loops);
//! - `thinking`: Anthropic reply with a signed thinking block before the text;
//! - `finish_with_text`: Chat stream whose last text piece carries the `finish_reason`;
//! - `legacy_tool`: like `tool`, as a deprecated Chat `function_call` (first call only).
//!
//! Streams are cut into 7-byte network chunks, so SSE events, placeholders and
//! multi-byte characters are split across reads.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use bytes::Bytes;
use serde_json::{json, Value};
use tokio::sync::oneshot;

/// One request as the vendor saw it.
#[derive(Clone, Debug)]
pub struct Seen {
    pub path: String,
    pub headers: HeaderMap,
    pub body: Value,
    pub raw: String,
}

#[derive(Clone, Default)]
pub struct Vendor {
    pub seen: Arc<Mutex<Vec<Seen>>>,
    pub jwks: Arc<Mutex<Value>>,
}

impl Vendor {
    pub fn all_raw(&self) -> String {
        self.seen
            .lock()
            .unwrap()
            .iter()
            .map(|s| format!("{}\n{:?}\n", s.raw, s.headers))
            .collect()
    }
    pub fn last(&self) -> Seen {
        self.seen
            .lock()
            .unwrap()
            .last()
            .cloned()
            .expect("vendor saw no request")
    }
    pub fn count(&self) -> usize {
        self.seen.lock().unwrap().len()
    }
}

pub struct Running {
    pub addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    join: Option<tokio::task::JoinHandle<()>>,
}

impl Running {
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }
    pub async fn stop(mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(j) = self.join.take() {
            let _ = j.await;
        }
    }
}

fn last_user_text(path: &str, body: &Value) -> String {
    let text_of = |c: &Value| -> String {
        match c {
            Value::String(s) => s.clone(),
            Value::Array(parts) => parts
                .iter()
                .filter_map(|p| p.get("text").and_then(Value::as_str))
                .collect::<Vec<_>>()
                .join(""),
            _ => String::new(),
        }
    };
    if path.ends_with("/responses") {
        return match body.get("input") {
            Some(Value::String(s)) => s.clone(),
            Some(Value::Array(items)) => items
                .iter()
                .rev()
                .find(|i| i.get("role").and_then(Value::as_str) == Some("user"))
                .and_then(|i| i.get("content"))
                .map(text_of)
                .unwrap_or_default(),
            _ => String::new(),
        };
    }
    body.get("messages")
        .and_then(Value::as_array)
        .and_then(|m| {
            m.iter()
                .rev()
                .find(|m| m.get("role").and_then(Value::as_str) == Some("user"))
        })
        .and_then(|m| m.get("content"))
        .map(text_of)
        .unwrap_or_default()
}

fn chunked(events: Vec<String>, broken: bool) -> Body {
    let all: Vec<u8> = events.concat().into_bytes();
    let mut pieces: Vec<Result<Bytes, std::io::Error>> = all
        .chunks(7)
        .map(|c| Ok(Bytes::copy_from_slice(c)))
        .collect();
    if broken {
        pieces.truncate(pieces.len() / 2);
        pieces.push(Err(std::io::Error::other("vendor crashed")));
    }
    Body::from_stream(futures::stream::iter(pieces))
}

/// Sends half the events, then goes silent for 3 s (a vendor that hangs mid-stream).
fn stalled(events: Vec<String>) -> Body {
    let half = events.len() / 2;
    let (a, b) = (events[..half].concat(), events[half..].concat());
    let s = futures::stream::unfold(0u8, move |step| {
        let (a, b) = (a.clone(), b.clone());
        async move {
            match step {
                0 => Some((Ok::<Bytes, std::io::Error>(Bytes::from(a)), 1)),
                1 => {
                    tokio::time::sleep(Duration::from_secs(3)).await;
                    Some((Ok(Bytes::from(b)), 2))
                }
                _ => None,
            }
        }
    });
    Body::from_stream(s)
}

fn sse(data: &Value) -> String {
    format!("data: {}\n\n", serde_json::to_string(data).unwrap())
}

fn asse(event: &str, data: &Value) -> String {
    format!(
        "event: {event}\ndata: {}\n\n",
        serde_json::to_string(data).unwrap()
    )
}

fn pieces(s: &str, n: usize) -> Vec<String> {
    let chars: Vec<char> = s.chars().collect();
    chars.chunks(n).map(|c| c.iter().collect()).collect()
}

fn tool_specs(text: &str) -> Vec<(String, String)> {
    match serde_json::from_str::<Value>(text) {
        Ok(Value::Array(a)) => a.iter().map(spec).collect(),
        Ok(v) => vec![spec(&v)],
        Err(_) => vec![("broken_tool".into(), "{not json".into())],
    }
}

fn spec(v: &Value) -> (String, String) {
    (
        v.get("name")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string(),
        match v.get("arguments") {
            Some(Value::String(s)) => s.clone(),
            Some(a) => serde_json::to_string(a).unwrap(),
            None => "{}".into(),
        },
    )
}

async fn handle(
    State(v): State<Vendor>,
    uri: axum::http::Uri,
    headers: HeaderMap,
    raw: String,
) -> Response {
    let path = uri.path().to_string();
    let body: Value = serde_json::from_str(&raw).unwrap_or(Value::Null);
    v.seen.lock().unwrap().push(Seen {
        path: path.clone(),
        headers: headers.clone(),
        body: body.clone(),
        raw: raw.clone(),
    });
    let model = body
        .get("model")
        .and_then(Value::as_str)
        .unwrap_or("echo")
        .to_string();
    let stream = body.get("stream").and_then(Value::as_bool).unwrap_or(false);
    if model == "slow" {
        tokio::time::sleep(Duration::from_secs(3)).await;
    }
    if model == "error500" {
        return (
            StatusCode::INTERNAL_SERVER_ERROR,
            Json(json!({"error": {"message": "vendor exploded", "type": "server_error"}})),
        )
            .into_response();
    }
    if model == "redirect" {
        return (
            StatusCode::TEMPORARY_REDIRECT,
            [(axum::http::header::LOCATION, path.clone())],
            Json(json!({"error": {"message": "moved", "type": "redirect"}})),
        )
            .into_response();
    }
    let text = last_user_text(&path, &body);
    let broken = model == "broken";
    let stall = model == "stall";
    let sse_resp = |events: Vec<String>| {
        Response::builder()
            .header("content-type", "text/event-stream")
            .header("x-request-id", "vendor-req-1")
            .body(if stall {
                stalled(events)
            } else {
                chunked(events, broken)
            })
            .unwrap()
    };
    if path.ends_with("/embeddings") {
        return Json(json!({"object": "list", "data": [{"object": "embedding", "index": 0, "embedding": [0.1, 0.2]}], "model": model})).into_response();
    }
    if path.ends_with("/chat/completions") {
        if model == "legacy_tool" {
            let (n, a) = tool_specs(&text).remove(0);
            if !stream {
                return Json(json!({
                    "id": "chatcmpl-1", "object": "chat.completion", "created": 1, "model": model,
                    "choices": [{"index": 0, "message": {"role": "assistant", "content": null, "function_call": {"name": n, "arguments": a}}, "logprobs": null, "finish_reason": "function_call"}]
                }))
                .into_response();
            }
            let base = json!({"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 1, "model": model});
            let chunk = |delta: Value, finish: Value| {
                let mut c = base.clone();
                c["choices"] = json!([{"index": 0, "delta": delta, "logprobs": null, "finish_reason": finish}]);
                sse(&c)
            };
            let mut ev = vec![chunk(
                json!({"role": "assistant", "content": null, "function_call": {"name": n, "arguments": ""}}),
                Value::Null,
            )];
            for p in pieces(&a, 5) {
                ev.push(chunk(
                    json!({"function_call": {"arguments": p}}),
                    Value::Null,
                ));
            }
            ev.push(chunk(json!({}), json!("function_call")));
            ev.push("data: [DONE]\n\n".into());
            return sse_resp(ev);
        }
        let tools = if model == "tool" {
            tool_specs(&text)
        } else {
            vec![]
        };
        if !stream {
            let mut msg = json!({"role": "assistant", "content": if tools.is_empty() { json!(format!("You said: {text}")) } else { Value::Null }});
            if !tools.is_empty() {
                msg["tool_calls"] = json!(tools.iter().enumerate().map(|(i, (n, a))| json!({"id": format!("call_{i}"), "type": "function", "function": {"name": n, "arguments": a}})).collect::<Vec<_>>());
            }
            return Json(json!({
                "id": "chatcmpl-1", "object": "chat.completion", "created": 1, "model": model,
                "choices": [{"index": 0, "message": msg, "logprobs": null, "finish_reason": if tools.is_empty() {"stop"} else {"tool_calls"}}],
                "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
                "system_fingerprint": "fp_unknown_field_kept"
            }))
            .into_response();
        }
        let base = json!({"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 1, "model": model});
        let chunk = |delta: Value, finish: Value| {
            let mut c = base.clone();
            c["choices"] =
                json!([{"index": 0, "delta": delta, "logprobs": null, "finish_reason": finish}]);
            sse(&c)
        };
        let mut ev = vec![chunk(
            json!({"role": "assistant", "content": ""}),
            Value::Null,
        )];
        if tools.is_empty() {
            let ps = pieces(&format!("You said: {text}"), 4);
            let last = ps.len().saturating_sub(1);
            for (i, p) in ps.into_iter().enumerate() {
                let finish = if model == "finish_with_text" && i == last {
                    json!("stop")
                } else {
                    Value::Null
                };
                ev.push(chunk(json!({"content": p}), finish));
            }
            if model != "finish_with_text" {
                ev.push(chunk(json!({}), json!("stop")));
            }
        } else {
            for (i, (n, a)) in tools.iter().enumerate() {
                ev.push(chunk(json!({"tool_calls": [{"index": i, "id": format!("call_{i}"), "type": "function", "function": {"name": n, "arguments": ""}}]}), Value::Null));
                for p in pieces(a, 5) {
                    ev.push(chunk(
                        json!({"tool_calls": [{"index": i, "function": {"arguments": p}}]}),
                        Value::Null,
                    ));
                }
            }
            ev.push(chunk(json!({}), json!("tool_calls")));
        }
        ev.push("data: [DONE]\n\n".into());
        return sse_resp(ev);
    }
    if path.ends_with("/messages") {
        let tools = if model == "tool" {
            tool_specs(&text)
        } else {
            vec![]
        };
        let thinking = model == "thinking";
        if !stream {
            let mut content = Vec::new();
            if thinking {
                content.push(json!({"type": "thinking", "thinking": "The user wrote <EMAIL_deadbeef> hmm", "signature": "sig-abc"}));
            }
            if tools.is_empty() {
                content.push(json!({"type": "text", "text": format!("You said: {text}")}));
            }
            for (i, (n, a)) in tools.iter().enumerate() {
                let input: Value = serde_json::from_str(a).unwrap_or(json!({"raw": a}));
                content.push(json!({"type": "tool_use", "id": format!("toolu_{i}"), "name": n, "input": input}));
            }
            return Json(json!({
                "id": "msg_1", "type": "message", "role": "assistant", "model": model, "content": content,
                "stop_reason": if tools.is_empty() {"end_turn"} else {"tool_use"}, "stop_sequence": null,
                "usage": {"input_tokens": 1, "output_tokens": 1}
            }))
            .into_response();
        }
        let mut ev = vec![asse(
            "message_start",
            &json!({"type": "message_start", "message": {"id": "msg_1", "type": "message", "role": "assistant", "model": model, "content": [], "stop_reason": null, "usage": {"input_tokens": 1, "output_tokens": 0}}}),
        )];
        ev.push(asse("ping", &json!({"type": "ping"})));
        let mut idx = 0;
        if thinking {
            ev.push(asse("content_block_start", &json!({"type": "content_block_start", "index": idx, "content_block": {"type": "thinking", "thinking": ""}})));
            ev.push(asse("content_block_delta", &json!({"type": "content_block_delta", "index": idx, "delta": {"type": "thinking_delta", "thinking": "The user wrote <EMAIL_deadbeef> hmm"}})));
            ev.push(asse("content_block_delta", &json!({"type": "content_block_delta", "index": idx, "delta": {"type": "signature_delta", "signature": "sig-abc"}})));
            ev.push(asse(
                "content_block_stop",
                &json!({"type": "content_block_stop", "index": idx}),
            ));
            idx += 1;
        }
        if tools.is_empty() {
            ev.push(asse("content_block_start", &json!({"type": "content_block_start", "index": idx, "content_block": {"type": "text", "text": ""}})));
            for p in pieces(&format!("You said: {text}"), 4) {
                ev.push(asse("content_block_delta", &json!({"type": "content_block_delta", "index": idx, "delta": {"type": "text_delta", "text": p}})));
            }
            ev.push(asse(
                "content_block_stop",
                &json!({"type": "content_block_stop", "index": idx}),
            ));
        }
        for (n, a) in &tools {
            ev.push(asse("content_block_start", &json!({"type": "content_block_start", "index": idx, "content_block": {"type": "tool_use", "id": format!("toolu_{idx}"), "name": n, "input": {}}})));
            for p in pieces(a, 5) {
                ev.push(asse("content_block_delta", &json!({"type": "content_block_delta", "index": idx, "delta": {"type": "input_json_delta", "partial_json": p}})));
            }
            ev.push(asse(
                "content_block_stop",
                &json!({"type": "content_block_stop", "index": idx}),
            ));
            idx += 1;
        }
        ev.push(asse("message_delta", &json!({"type": "message_delta", "delta": {"stop_reason": if tools.is_empty() {"end_turn"} else {"tool_use"}, "stop_sequence": null}, "usage": {"output_tokens": 5}})));
        ev.push(asse("message_stop", &json!({"type": "message_stop"})));
        return sse_resp(ev);
    }
    if path.ends_with("/responses") {
        let tools = if model == "tool" {
            tool_specs(&text)
        } else {
            vec![]
        };
        let reply = format!("You said: {text}");
        let mut output = Vec::new();
        if tools.is_empty() {
            output.push(json!({"type": "message", "id": "msg_1", "status": "completed", "role": "assistant", "content": [{"type": "output_text", "text": reply, "annotations": []}]}));
        }
        for (i, (n, a)) in tools.iter().enumerate() {
            output.push(json!({"type": "function_call", "id": format!("fc_{i}"), "call_id": format!("call_{i}"), "name": n, "arguments": a, "status": "completed"}));
        }
        let resp = json!({"id": format!("resp_{}", v.count()), "object": "response", "status": "completed", "model": model, "output": output});
        if !stream {
            return Json(resp).into_response();
        }
        let mut created = resp.clone();
        created["status"] = json!("in_progress");
        created["output"] = json!([]);
        let mut ev = vec![asse(
            "response.created",
            &json!({"type": "response.created", "response": created}),
        )];
        if tools.is_empty() {
            ev.push(asse("response.output_item.added", &json!({"type": "response.output_item.added", "output_index": 0, "item": {"type": "message", "id": "msg_1", "status": "in_progress", "role": "assistant", "content": []}})));
            for p in pieces(&reply, 4) {
                ev.push(asse("response.output_text.delta", &json!({"type": "response.output_text.delta", "item_id": "msg_1", "output_index": 0, "content_index": 0, "delta": p})));
            }
            ev.push(asse("response.output_text.done", &json!({"type": "response.output_text.done", "item_id": "msg_1", "output_index": 0, "content_index": 0, "text": reply})));
            ev.push(asse(
                "response.output_item.done",
                &json!({"type": "response.output_item.done", "output_index": 0, "item": output[0]}),
            ));
        }
        for (i, (n, a)) in tools.iter().enumerate() {
            let id = format!("fc_{i}");
            ev.push(asse("response.output_item.added", &json!({"type": "response.output_item.added", "output_index": i, "item": {"type": "function_call", "id": id, "call_id": format!("call_{i}"), "name": n, "arguments": "", "status": "in_progress"}})));
            for p in pieces(a, 5) {
                ev.push(asse("response.function_call_arguments.delta", &json!({"type": "response.function_call_arguments.delta", "item_id": id, "output_index": i, "delta": p})));
            }
            ev.push(asse("response.function_call_arguments.done", &json!({"type": "response.function_call_arguments.done", "item_id": id, "output_index": i, "arguments": a})));
            ev.push(asse(
                "response.output_item.done",
                &json!({"type": "response.output_item.done", "output_index": i, "item": output[i]}),
            ));
        }
        ev.push(asse(
            "response.completed",
            &json!({"type": "response.completed", "response": resp}),
        ));
        return sse_resp(ev);
    }
    (StatusCode::NOT_FOUND, "no such route").into_response()
}

async fn models(State(v): State<Vendor>, headers: HeaderMap) -> Response {
    v.seen.lock().unwrap().push(Seen {
        path: "/v1/models".into(),
        headers,
        body: Value::Null,
        raw: String::new(),
    });
    Json(json!({"object": "list", "data": [{"id": "gpt-test", "object": "model"}]})).into_response()
}

async fn jwks(State(v): State<Vendor>) -> Response {
    Json(v.jwks.lock().unwrap().clone()).into_response()
}

pub async fn start_vendor() -> (Vendor, Running) {
    let vendor = Vendor::default();
    let app = Router::new()
        .route("/v1/models", get(models))
        .route("/jwks.json", get(jwks))
        .route("/v1/{*rest}", post(handle))
        .with_state(vendor.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = oneshot::channel::<()>();
    let join = tokio::spawn(async move {
        let _ = axum::serve(listener, app)
            .with_graceful_shutdown(async {
                let _ = rx.await;
            })
            .await;
    });
    (
        vendor,
        Running {
            addr,
            stop: Some(tx),
            join: Some(join),
        },
    )
}

pub struct Proxy {
    pub run: Running,
    pub state: Arc<warden_proxy::AppState>,
    pub dir: tempfile::TempDir,
}

impl Proxy {
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.run.url())
    }
    pub fn audit_text(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("audit.jsonl")).unwrap_or_default()
    }
    /// The Prometheus text of `/metrics`.
    pub async fn metrics_text(&self) -> String {
        client()
            .get(self.url("/metrics"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    }
}

/// The config every test starts from: upstreams at the fake vendor, audit in a temp dir.
pub fn base_config(vendor: &Running, dir: &std::path::Path) -> warden_proxy::Config {
    let mut cfg = warden_proxy::Config::default();
    cfg.upstream.openai.base_url = vendor.url();
    cfg.upstream.openai.key_env = None;
    cfg.upstream.anthropic.base_url = vendor.url();
    cfg.upstream.anthropic.key_env = None;
    let key = dir.join("vendor.key");
    std::fs::write(&key, "sk-vendor-secret-key-1").unwrap();
    cfg.upstream.openai.key_file = Some(key.clone());
    cfg.upstream.anthropic.key_file = Some(key);
    cfg.audit.path = dir.join("audit.jsonl");
    cfg.limits.read_timeout_ms = 1500;
    cfg.store.token_key_env = None;
    cfg.policy.state_url = Some(format!("sqlite:{}", dir.join("state.sqlite").display()));
    cfg
}

pub async fn start_proxy_with(cfg: warden_proxy::Config, dir: tempfile::TempDir) -> Proxy {
    init_logs();
    let state = warden_proxy::AppState::build(cfg)
        .await
        .expect("proxy state");
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = oneshot::channel::<()>();
    let st = state.clone();
    let join = tokio::spawn(async move {
        warden_proxy::serve(st, listener, async {
            let _ = rx.await;
        })
        .await
        .expect("serve");
    });
    Proxy {
        run: Running {
            addr,
            stop: Some(tx),
            join: Some(join),
        },
        state,
        dir,
    }
}

pub async fn start_proxy(vendor: &Running, tweak: impl FnOnce(&mut warden_proxy::Config)) -> Proxy {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = base_config(vendor, dir.path());
    tweak(&mut cfg);
    start_proxy_with(cfg, dir).await
}

/// Every log line any test in this binary produced (JSON, as in production).
pub fn logs() -> String {
    String::from_utf8_lossy(&LOGS.get_or_init(Default::default).lock().unwrap()).into_owned()
}

static LOGS: OnceLock<Arc<Mutex<Vec<u8>>>> = OnceLock::new();

#[derive(Clone)]
struct LogWriter(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for LogWriter {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for LogWriter {
    type Writer = LogWriter;
    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }
}

fn init_logs() {
    let buf = LOGS.get_or_init(Default::default).clone();
    let _ = tracing_subscriber::fmt()
        .json()
        .with_max_level(tracing::Level::TRACE)
        .with_writer(LogWriter(buf))
        .with_current_span(true)
        .try_init();
}

pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(20))
        .build()
        .unwrap()
}

/// Parse an SSE body into (event, data) pairs.
pub fn sse_events(body: &str) -> Vec<(Option<String>, String)> {
    body.split("\n\n")
        .filter(|e| !e.trim().is_empty())
        .map(|e| {
            let mut ev = None;
            let mut data = Vec::new();
            for l in e.lines() {
                if let Some(x) = l.strip_prefix("event: ") {
                    ev = Some(x.to_string());
                } else if let Some(x) = l.strip_prefix("data: ") {
                    data.push(x);
                }
            }
            (ev, data.join("\n"))
        })
        .collect()
}
