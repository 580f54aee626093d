//! A deterministic fake LLM vendor for the load benchmark (`scripts/bench-proxy`).
//!
//! Speaks just enough OpenAI Chat Completions: non-streaming requests get a
//! fixed completion; `"stream": true` gets 16 fixed content chunks and
//! `[DONE]`. It reads and parses the body (as a vendor would) but does no
//! other work, so the benchmark measures Warden, not the vendor.
//!
//! Usage: `fake_vendor [PORT] [DELAY_MS]` (default 0 = any free port, no
//! delay); prints `listening ADDR`. With a delay every answer starts that many
//! milliseconds after its request arrived, as a remote vendor's would, so a
//! closed-loop load at a given concurrency runs at a rate the machine can
//! serve instead of saturating it.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use axum::body::Body;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::Router;
use bytes::Bytes;

const REPLY: &str = r#"{"id":"chatcmpl-bench","object":"chat.completion","created":1,"model":"bench","choices":[{"index":0,"message":{"role":"assistant","content":"Thanks, I have noted the details and will follow up shortly."},"logprobs":null,"finish_reason":"stop"}],"usage":{"prompt_tokens":100,"completion_tokens":12,"total_tokens":112}}"#;

fn stream_body() -> Bytes {
    let mut s = String::new();
    for i in 0..16 {
        s.push_str(&format!(
            "data: {{\"id\":\"chatcmpl-bench\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"bench\",\"choices\":[{{\"index\":0,\"delta\":{{\"content\":\"token{i} \"}},\"logprobs\":null,\"finish_reason\":null}}]}}\n\n"
        ));
    }
    s.push_str("data: {\"id\":\"chatcmpl-bench\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"bench\",\"choices\":[{\"index\":0,\"delta\":{},\"logprobs\":null,\"finish_reason\":\"stop\"}]}\n\ndata: [DONE]\n\n");
    Bytes::from(s)
}

static DELAY_MS: AtomicU64 = AtomicU64::new(0);

async fn chat(body: Bytes) -> Response {
    let delay = DELAY_MS.load(Ordering::Relaxed);
    if delay > 0 {
        tokio::time::sleep(Duration::from_millis(delay)).await;
    }
    let stream = serde_json::from_slice::<serde_json::Value>(&body)
        .ok()
        .and_then(|v| v.get("stream").and_then(serde_json::Value::as_bool))
        .unwrap_or(false);
    if stream {
        // One network write per event, as a real vendor streams.
        let text = String::from_utf8_lossy(&stream_body()).into_owned();
        let events: Vec<Result<Bytes, std::io::Error>> = text
            .split_inclusive("\n\n")
            .map(|e| Ok(Bytes::from(e.to_string())))
            .collect();
        return Response::builder()
            .header("content-type", "text/event-stream")
            .body(Body::from_stream(futures::stream::iter(events)))
            .unwrap_or_default();
    }
    ([("content-type", "application/json")], REPLY).into_response()
}

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let port: u16 = std::env::args()
        .nth(1)
        .and_then(|p| p.parse().ok())
        .unwrap_or(0);
    let delay: u64 = std::env::args()
        .nth(2)
        .and_then(|d| d.parse().ok())
        .unwrap_or(0);
    DELAY_MS.store(delay, Ordering::Relaxed);
    let app = Router::new().route("/v1/chat/completions", post(chat));
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await?;
    println!("listening {}", listener.local_addr()?);
    use axum::serve::ListenerExt;
    let listener = listener.tap_io(|tcp| {
        let _ = tcp.set_nodelay(true);
    });
    axum::serve(listener, app).await
}
