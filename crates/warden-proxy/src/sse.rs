//! Server-sent events: a bounded parser, a writer, and one transformer per wire
//! format that restores placeholders token by token (never emitting a partial
//! placeholder: the restorer holds back a possible token prefix) and holds
//! tool-call deltas until the call is complete and validated.
//!
//! Events are only released whole and re-serialised from parsed UTF-8, so a
//! multi-byte character split across network chunks is never emitted broken.
//! Memory per stream is bounded: one event at most `max` bytes, tool-call
//! arguments at most `max` bytes per stream (a larger call is denied).

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use serde_json::{json, Value};

use crate::convo::Api;
use crate::engine::{CallVerdict, Restorer};
use crate::respond::{refusal_message_item, refusal_text, restore_tree, ReqCtx};

/// One parsed event.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SseEvent {
    /// `event:` field.
    pub event: Option<String>,
    /// `data:` lines joined with `\n`.
    pub data: Option<String>,
    /// Other lines (`id:`, `retry:`, comments), kept verbatim.
    pub extra: Vec<String>,
}

/// Stream errors.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum SseError {
    /// An event grew past the per-stream buffer limit.
    #[error("stream event exceeds {0} bytes")]
    TooLarge(usize),
    /// An event is not valid UTF-8.
    #[error("stream event is not valid UTF-8")]
    Utf8,
}

/// Incremental parser: feed bytes, get complete events.
pub struct SseParser {
    buf: Vec<u8>,
    scanned: usize,
    max: usize,
}

impl SseParser {
    /// A parser that refuses events larger than `max` bytes.
    pub fn new(max: usize) -> Self {
        SseParser {
            buf: Vec::new(),
            scanned: 0,
            max,
        }
    }

    /// Feed a chunk.
    ///
    /// # Errors
    /// An event too large or not UTF-8.
    pub fn push(&mut self, chunk: &[u8]) -> Result<Vec<SseEvent>, SseError> {
        self.buf.extend_from_slice(chunk);
        let mut out = Vec::new();
        loop {
            let Some((end, delim)) = find_blank_line(&self.buf, self.scanned) else {
                self.scanned = self.buf.len().saturating_sub(3);
                if self.buf.len() > self.max {
                    return Err(SseError::TooLarge(self.max));
                }
                return Ok(out);
            };
            let raw: Vec<u8> = self.buf.drain(..end + delim).collect();
            self.scanned = 0;
            let text = std::str::from_utf8(&raw[..end]).map_err(|_| SseError::Utf8)?;
            if let Some(ev) = parse_event(text) {
                out.push(ev);
            }
        }
    }

    /// Whatever remains when the stream ends (an event without its blank line).
    pub fn finish(&mut self) -> Option<SseEvent> {
        let raw = std::mem::take(&mut self.buf);
        std::str::from_utf8(&raw).ok().and_then(parse_event)
    }
}

fn find_blank_line(buf: &[u8], from: usize) -> Option<(usize, usize)> {
    let mut i = from;
    while i + 1 < buf.len() {
        if buf[i] == b'\n' {
            if buf[i + 1] == b'\n' {
                return Some((i, 2));
            }
            if buf[i + 1] == b'\r' && buf.get(i + 2) == Some(&b'\n') {
                return Some((i, 3));
            }
        }
        i += 1;
    }
    None
}

fn parse_event(text: &str) -> Option<SseEvent> {
    let mut ev = SseEvent::default();
    for line in text.split('\n') {
        let line = line.strip_suffix('\r').unwrap_or(line);
        if line.is_empty() {
            continue;
        }
        let (field, value) = match line.split_once(':') {
            Some((f, v)) => (f, v.strip_prefix(' ').unwrap_or(v)),
            None => (line, ""),
        };
        match field {
            "event" => ev.event = Some(value.to_string()),
            "data" => match &mut ev.data {
                Some(d) => {
                    d.push('\n');
                    d.push_str(value);
                }
                None => ev.data = Some(value.to_string()),
            },
            _ => ev.extra.push(line.to_string()),
        }
    }
    if ev.event.is_none() && ev.data.is_none() && ev.extra.is_empty() {
        None
    } else {
        Some(ev)
    }
}

/// Serialise one event.
pub fn write_event(out: &mut Vec<u8>, event: Option<&str>, data: Option<&str>, extra: &[String]) {
    for l in extra {
        out.extend_from_slice(l.as_bytes());
        out.push(b'\n');
    }
    if let Some(e) = event {
        out.extend_from_slice(b"event: ");
        out.extend_from_slice(e.as_bytes());
        out.push(b'\n');
    }
    if let Some(d) = data {
        for l in d.split('\n') {
            out.extend_from_slice(b"data: ");
            out.extend_from_slice(l.as_bytes());
            out.push(b'\n');
        }
    }
    out.push(b'\n');
}

fn emit_json(out: &mut Vec<u8>, event: Option<&str>, v: &Value) {
    // jsonw writes what serde_json would, faster; its output is UTF-8 (escapes are ASCII).
    let s = String::from_utf8(crate::jsonw::to_vec(v, 256)).unwrap_or_default();
    write_event(out, event, Some(&s), &[]);
}

/// The per-format stream transformer.
pub enum Transformer {
    /// OpenAI Chat Completions.
    Chat(ChatStream),
    /// Anthropic Messages.
    Messages(MessagesStream),
    /// OpenAI Responses.
    Responses(ResponsesStream),
}

impl Transformer {
    /// A transformer for `ctx.api`.
    pub fn new(ctx: Arc<ReqCtx>, max: usize) -> Transformer {
        match ctx.api {
            Api::Messages => Transformer::Messages(MessagesStream {
                ctx,
                max,
                blocks: HashMap::new(),
                allowed: 0,
                denied: 0,
                ended: false,
            }),
            Api::Responses => Transformer::Responses(ResponsesStream {
                ctx,
                max,
                texts: HashMap::new(),
                calls: HashMap::new(),
                denied: HashMap::new(),
                allowed: HashMap::new(),
                ended: false,
                response_id: None,
            }),
            _ => Transformer::Chat(ChatStream {
                ctx,
                max,
                choices: BTreeMap::new(),
                template: None,
                ended: false,
                held: 0,
            }),
        }
    }

    /// Handle one upstream event, appending what to send to `out`.
    pub async fn on_event(&mut self, ev: SseEvent, out: &mut Vec<u8>) {
        match self {
            Transformer::Chat(t) => t.on_event(ev, out).await,
            Transformer::Messages(t) => t.on_event(ev, out).await,
            Transformer::Responses(t) => t.on_event(ev, out).await,
        }
    }

    /// The upstream ended (cleanly or not); `error` says why when it failed.
    /// Returns whether the stream had completed properly.
    pub async fn finish(&mut self, error: Option<&str>, out: &mut Vec<u8>) -> bool {
        match self {
            Transformer::Chat(t) => t.finish(error, out),
            Transformer::Messages(t) => t.finish(error, out),
            Transformer::Responses(t) => t.finish(error, out).await,
        }
    }

    /// The response id seen in the stream (Responses API), for the vault store.
    pub fn response_id(&self) -> Option<&str> {
        match self {
            Transformer::Responses(t) => t.response_id.as_deref(),
            _ => None,
        }
    }
}

fn broken_message(error: Option<&str>) -> String {
    match error {
        Some(e) => format!("upstream stream failed: {e}"),
        None => "upstream stream ended before completion".to_string(),
    }
}

// ---------------------------------------------------------------- OpenAI Chat

struct ChatCall {
    first: Value,
    id: Option<String>,
    name: String,
    args: String,
    overflow: bool,
}

struct ChatChoice {
    restorer: Restorer,
    calls: BTreeMap<u64, ChatCall>,
}

/// OpenAI Chat Completions stream state.
pub struct ChatStream {
    ctx: Arc<ReqCtx>,
    max: usize,
    choices: BTreeMap<u64, ChatChoice>,
    template: Option<Value>,
    ended: bool,
    held: usize,
}

impl ChatStream {
    fn synthetic(&self, index: u64, delta: Value, finish: Value) -> Value {
        let mut chunk = self
            .template
            .clone()
            .unwrap_or_else(|| json!({"object": "chat.completion.chunk"}));
        chunk["choices"] =
            json!([{"index": index, "delta": delta, "logprobs": null, "finish_reason": finish}]);
        chunk
    }

    fn choice(&mut self, idx: u64) -> &mut ChatChoice {
        let vault = self.ctx.vault.clone();
        self.choices.entry(idx).or_insert_with(|| ChatChoice {
            restorer: Restorer::new(vault, false),
            calls: BTreeMap::new(),
        })
    }

    /// Release held text and decide held tool calls of one choice. Returns
    /// (allowed, denied) counts.
    async fn flush_choice(&mut self, idx: u64, out: &mut Vec<u8>) -> (usize, usize) {
        let Some(mut st) = self.choices.remove(&idx) else {
            return (0, 0);
        };
        let rest = st.restorer.finish();
        self.ctx.saw_text(&rest);
        if !rest.is_empty() {
            emit_json(
                out,
                None,
                &self.synthetic(idx, json!({"content": rest}), Value::Null),
            );
        }
        let (mut allowed, mut refusals) = (Vec::new(), Vec::new());
        for (_, call) in std::mem::take(&mut st.calls) {
            self.held = self.held.saturating_sub(call.args.len());
            let verdict = if call.overflow {
                let v = CallVerdict::deny(
                    "warden.arguments_too_large",
                    "the tool-call arguments exceed the stream buffer limit",
                );
                self.ctx.decide_recorded(&call.name, &v);
                v
            } else {
                let restored = self.ctx.vault.restore_json(&call.args);
                let v = self.ctx.decide(&call.name, &restored).await;
                if v.allowed() {
                    let mut tc = call.first.clone();
                    tc["index"] = json!(allowed.len());
                    if let Some(id) = &call.id {
                        tc["id"] = json!(id);
                    }
                    tc["type"] = json!("function");
                    tc["function"] = json!({"name": call.name, "arguments": restored});
                    allowed.push(tc);
                    continue;
                }
                v
            };
            refusals.push(refusal_text(&call.name, &verdict));
        }
        if !refusals.is_empty() {
            emit_json(
                out,
                None,
                &self.synthetic(idx, json!({"content": refusals.join("\n")}), Value::Null),
            );
        }
        if !allowed.is_empty() {
            emit_json(
                out,
                None,
                &self.synthetic(idx, json!({"tool_calls": allowed}), Value::Null),
            );
        }
        // Keep an empty state so later chunks of this choice (usage) still work.
        self.choice(idx);
        (allowed.len(), refusals.len())
    }

    async fn on_event(&mut self, ev: SseEvent, out: &mut Vec<u8>) {
        let Some(data) = ev.data.as_deref() else {
            write_event(out, ev.event.as_deref(), None, &ev.extra);
            return;
        };
        if data.trim() == "[DONE]" {
            let idxs: Vec<u64> = self.choices.keys().copied().collect();
            for i in idxs {
                self.flush_choice(i, out).await;
            }
            self.ended = true;
            write_event(out, ev.event.as_deref(), Some(data), &ev.extra);
            return;
        }
        let Ok(mut chunk) = serde_json::from_str::<Value>(data) else {
            write_event(out, ev.event.as_deref(), Some(data), &ev.extra);
            return;
        };
        if self.template.is_none() {
            let mut t = chunk.clone();
            if let Some(o) = t.as_object_mut() {
                o.remove("choices");
                o.remove("usage");
            }
            self.template = Some(t);
        }
        let Some(choices) = chunk
            .get_mut("choices")
            .and_then(Value::as_array_mut)
            .map(std::mem::take)
        else {
            restore_tree(&self.ctx.vault, &mut chunk);
            emit_json(out, ev.event.as_deref(), &chunk);
            return;
        };
        let had_choices = !choices.is_empty();
        let mut kept = Vec::new();
        for mut choice in choices {
            let idx = choice.get("index").and_then(Value::as_u64).unwrap_or(0);
            let max = self.max;
            let mut held_delta = 0usize;
            {
                let ctx = self.ctx.clone();
                let st = self.choice(idx);
                if let Some(delta) = choice.get_mut("delta").and_then(Value::as_object_mut) {
                    if let Some(Value::String(s)) = delta.get("content") {
                        let r = st.restorer.feed(s);
                        ctx.saw_text(&r);
                        delta.insert("content".into(), Value::String(r));
                    }
                    if let Some(Value::Array(tcs)) = delta.remove("tool_calls") {
                        for tc in tcs {
                            let i = tc.get("index").and_then(Value::as_u64).unwrap_or(0);
                            let call = st.calls.entry(i).or_insert_with(|| {
                                let mut first = tc.clone();
                                if let Some(f) =
                                    first.get_mut("function").and_then(Value::as_object_mut)
                                {
                                    f.remove("arguments");
                                }
                                ChatCall {
                                    first,
                                    id: None,
                                    name: String::new(),
                                    args: String::new(),
                                    overflow: false,
                                }
                            });
                            if let Some(id) = tc.get("id").and_then(Value::as_str) {
                                call.id = Some(id.to_string());
                            }
                            if let Some(n) = tc.pointer("/function/name").and_then(Value::as_str) {
                                call.name.push_str(n);
                            }
                            if let Some(a) =
                                tc.pointer("/function/arguments").and_then(Value::as_str)
                            {
                                if call.args.len() + a.len() > max {
                                    call.overflow = true;
                                } else if !call.overflow {
                                    call.args.push_str(a);
                                    held_delta += a.len();
                                }
                            }
                        }
                    }
                }
            }
            self.held += held_delta;
            if self.held > self.max {
                // Total held arguments across calls are bounded too.
                if let Some(st) = self.choices.get_mut(&idx) {
                    for c in st.calls.values_mut() {
                        c.overflow = true;
                    }
                }
            }
            let finish = choice.get("finish_reason").cloned().unwrap_or(Value::Null);
            if !finish.is_null() {
                let (allowed, denied) = self.flush_choice(idx, out).await;
                if denied > 0 && allowed == 0 && finish.as_str() == Some("tool_calls") {
                    choice["finish_reason"] = json!("stop");
                }
            }
            let delta_empty = choice
                .get("delta")
                .and_then(Value::as_object)
                .is_none_or(|d| {
                    d.iter()
                        .all(|(k, v)| k == "content" && v.as_str().is_some_and(str::is_empty))
                });
            let has_more = choice.get("finish_reason").is_some_and(|f| !f.is_null())
                || choice.get("logprobs").is_some_and(|l| !l.is_null());
            if !delta_empty || has_more {
                kept.push(choice);
            }
        }
        if had_choices && kept.is_empty() && chunk.get("usage").is_none_or(Value::is_null) {
            return;
        }
        chunk["choices"] = Value::Array(kept);
        emit_json(out, ev.event.as_deref(), &chunk);
    }

    fn finish(&mut self, error: Option<&str>, out: &mut Vec<u8>) -> bool {
        if self.ended && error.is_none() {
            return true;
        }
        // Held tool calls are incomplete: they are never released.
        let msg = broken_message(error);
        emit_json(
            out,
            None,
            &json!({"error": {"message": msg, "type": "api_error", "param": null, "code": "upstream_stream_broken"}}),
        );
        false
    }
}

// ---------------------------------------------------------- Anthropic Messages

enum Block {
    Text(Restorer),
    Tool {
        start: Value,
        json: String,
        overflow: bool,
    },
    Other,
}

/// Anthropic Messages stream state.
pub struct MessagesStream {
    ctx: Arc<ReqCtx>,
    max: usize,
    blocks: HashMap<u64, Block>,
    allowed: usize,
    denied: usize,
    ended: bool,
}

impl MessagesStream {
    async fn on_event(&mut self, ev: SseEvent, out: &mut Vec<u8>) {
        let Some(data) = ev.data.as_deref() else {
            write_event(out, ev.event.as_deref(), None, &ev.extra);
            return;
        };
        let Ok(mut v) = serde_json::from_str::<Value>(data) else {
            write_event(out, ev.event.as_deref(), Some(data), &ev.extra);
            return;
        };
        let ty = v
            .get("type")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        let index = v.get("index").and_then(Value::as_u64).unwrap_or(0);
        let name = ev.event.as_deref();
        match ty.as_str() {
            "message_start" => {
                if let Some(m) = v.get_mut("message") {
                    restore_tree(&self.ctx.vault, m);
                }
            }
            "content_block_start" => {
                let bty = v
                    .pointer("/content_block/type")
                    .and_then(Value::as_str)
                    .unwrap_or("");
                match bty {
                    "text" => {
                        if let Some(cb) = v.get_mut("content_block") {
                            restore_tree(&self.ctx.vault, cb);
                        }
                        self.blocks.insert(
                            index,
                            Block::Text(Restorer::new(self.ctx.vault.clone(), false)),
                        );
                    }
                    "tool_use" => {
                        self.blocks.insert(
                            index,
                            Block::Tool {
                                start: v,
                                json: String::new(),
                                overflow: false,
                            },
                        );
                        return;
                    }
                    _ => {
                        self.blocks.insert(index, Block::Other);
                    }
                }
            }
            "content_block_delta" => match self.blocks.get_mut(&index) {
                Some(Block::Text(r)) => {
                    if let Some(Value::String(t)) = v.pointer_mut("/delta/text") {
                        let restored = r.feed(t);
                        self.ctx.saw_text(&restored);
                        if restored.is_empty() {
                            return;
                        }
                        *t = restored;
                    }
                }
                Some(Block::Tool { json, overflow, .. }) => {
                    if let Some(p) = v.pointer("/delta/partial_json").and_then(Value::as_str) {
                        if json.len() + p.len() > self.max {
                            *overflow = true;
                        } else if !*overflow {
                            json.push_str(p);
                        }
                    }
                    return;
                }
                _ => {}
            },
            "content_block_stop" => match self.blocks.remove(&index) {
                Some(Block::Text(mut r)) => {
                    let rest = r.finish();
                    self.ctx.saw_text(&rest);
                    if !rest.is_empty() {
                        emit_json(
                            out,
                            Some("content_block_delta"),
                            &json!({"type": "content_block_delta", "index": index, "delta": {"type": "text_delta", "text": rest}}),
                        );
                    }
                }
                Some(Block::Tool {
                    start,
                    json,
                    overflow,
                }) => {
                    self.release_tool(index, start, &json, overflow, out).await;
                    return;
                }
                _ => {}
            },
            "message_delta"
                if self.denied > 0
                    && self.allowed == 0
                    && v.pointer("/delta/stop_reason").and_then(Value::as_str)
                        == Some("tool_use") =>
            {
                v["delta"]["stop_reason"] = json!("end_turn");
            }
            "message_stop" => self.ended = true,
            _ => {}
        }
        emit_json(out, name, &v);
    }

    async fn release_tool(
        &mut self,
        index: u64,
        mut start: Value,
        args: &str,
        overflow: bool,
        out: &mut Vec<u8>,
    ) {
        let name = start
            .pointer("/content_block/name")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        let (verdict, restored) = if overflow {
            let v = CallVerdict::deny(
                "warden.arguments_too_large",
                "the tool-call arguments exceed the stream buffer limit",
            );
            self.ctx.decide_recorded(&name, &v);
            (v, String::new())
        } else {
            let args = if args.trim().is_empty() { "{}" } else { args };
            let restored = self.ctx.vault.restore_json(args);
            (self.ctx.decide(&name, &restored).await, restored)
        };
        if verdict.allowed() {
            self.allowed += 1;
            if let Some(input) = start.pointer_mut("/content_block/input") {
                *input = json!({});
            }
            emit_json(out, Some("content_block_start"), &start);
            emit_json(
                out,
                Some("content_block_delta"),
                &json!({"type": "content_block_delta", "index": index, "delta": {"type": "input_json_delta", "partial_json": restored}}),
            );
        } else {
            self.denied += 1;
            emit_json(
                out,
                Some("content_block_start"),
                &json!({"type": "content_block_start", "index": index, "content_block": {"type": "text", "text": ""}}),
            );
            emit_json(
                out,
                Some("content_block_delta"),
                &json!({"type": "content_block_delta", "index": index, "delta": {"type": "text_delta", "text": refusal_text(&name, &verdict)}}),
            );
        }
        emit_json(
            out,
            Some("content_block_stop"),
            &json!({"type": "content_block_stop", "index": index}),
        );
    }

    fn finish(&mut self, error: Option<&str>, out: &mut Vec<u8>) -> bool {
        if self.ended && error.is_none() {
            return true;
        }
        let msg = broken_message(error);
        emit_json(
            out,
            Some("error"),
            &json!({"type": "error", "error": {"type": "api_error", "message": msg}}),
        );
        false
    }
}

// ------------------------------------------------------------ OpenAI Responses

struct RespCall {
    added: Value,
    args: String,
    overflow: bool,
}

/// OpenAI Responses stream state.
pub struct ResponsesStream {
    ctx: Arc<ReqCtx>,
    max: usize,
    texts: HashMap<(String, u64), Restorer>,
    calls: HashMap<String, RespCall>,
    denied: HashMap<String, Value>,
    allowed: HashMap<String, String>,
    ended: bool,
    response_id: Option<String>,
}

impl ResponsesStream {
    async fn on_event(&mut self, ev: SseEvent, out: &mut Vec<u8>) {
        let Some(data) = ev.data.as_deref() else {
            write_event(out, ev.event.as_deref(), None, &ev.extra);
            return;
        };
        let Ok(mut v) = serde_json::from_str::<Value>(data) else {
            write_event(out, ev.event.as_deref(), Some(data), &ev.extra);
            return;
        };
        let ty = v
            .get("type")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        let name = ev.event.clone();
        let item_id = v
            .get("item_id")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        match ty.as_str() {
            "response.created" | "response.in_progress" => {
                if let Some(id) = v.pointer("/response/id").and_then(Value::as_str) {
                    self.response_id = Some(id.to_string());
                }
                restore_tree(&self.ctx.vault, &mut v);
            }
            "response.output_item.added"
                if v.pointer("/item/type").and_then(Value::as_str) == Some("function_call") =>
            {
                let id = v
                    .pointer("/item/id")
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_string();
                self.calls.insert(
                    id,
                    RespCall {
                        added: v,
                        args: String::new(),
                        overflow: false,
                    },
                );
                return;
            }
            "response.function_call_arguments.delta" if self.calls.contains_key(&item_id) => {
                if let (Some(c), Some(d)) = (
                    self.calls.get_mut(&item_id),
                    v.get("delta").and_then(Value::as_str),
                ) {
                    if c.args.len() + d.len() > self.max {
                        c.overflow = true;
                    } else if !c.overflow {
                        c.args.push_str(d);
                    }
                }
                return;
            }
            "response.function_call_arguments.done" if self.calls.contains_key(&item_id) => return,
            "response.output_item.done"
                if v.pointer("/item/type").and_then(Value::as_str) == Some("function_call") =>
            {
                self.release_call(v, name.as_deref(), out).await;
                return;
            }
            "response.output_text.delta" => {
                let key = (
                    item_id,
                    v.get("content_index").and_then(Value::as_u64).unwrap_or(0),
                );
                let vault = self.ctx.vault.clone();
                let r = self
                    .texts
                    .entry(key)
                    .or_insert_with(|| Restorer::new(vault, false));
                if let Some(Value::String(d)) = v.get_mut("delta") {
                    let restored = r.feed(d);
                    self.ctx.saw_text(&restored);
                    if restored.is_empty() {
                        return;
                    }
                    *d = restored;
                }
            }
            "response.output_text.done" => {
                let key = (
                    item_id,
                    v.get("content_index").and_then(Value::as_u64).unwrap_or(0),
                );
                if let Some(mut r) = self.texts.remove(&key) {
                    let rest = r.finish();
                    self.ctx.saw_text(&rest);
                    if !rest.is_empty() {
                        let mut d = v.clone();
                        d["type"] = json!("response.output_text.delta");
                        if let Some(o) = d.as_object_mut() {
                            o.remove("text");
                        }
                        d["delta"] = json!(rest);
                        emit_json(out, Some("response.output_text.delta"), &d);
                    }
                }
                restore_tree(&self.ctx.vault, &mut v);
            }
            "response.completed" | "response.incomplete" | "response.failed" | "response.done" => {
                self.ended = true;
                if let Some(items) = v
                    .pointer_mut("/response/output")
                    .and_then(Value::as_array_mut)
                {
                    for item in items.iter_mut() {
                        let id = item
                            .get("id")
                            .and_then(Value::as_str)
                            .unwrap_or("")
                            .to_string();
                        if let Some(rep) = self.denied.get(&id) {
                            *item = rep.clone();
                        } else if let Some(args) = self.allowed.get(&id) {
                            item["arguments"] = json!(args);
                        } else if item.get("type").and_then(Value::as_str) == Some("function_call")
                        {
                            // A call we never saw complete in the stream is not released.
                            let n = item
                                .get("name")
                                .and_then(Value::as_str)
                                .unwrap_or("")
                                .to_string();
                            let verdict = CallVerdict::deny(
                                "warden.call_not_streamed",
                                "the call did not complete in the stream",
                            );
                            self.ctx.decide_recorded(&n, &verdict);
                            *item = refusal_message_item(item, &refusal_text(&n, &verdict));
                        }
                    }
                }
                // Allowed arguments are already restored; restore the rest.
                let saved: Vec<(String, String)> = self
                    .allowed
                    .iter()
                    .map(|(a, b)| (a.clone(), b.clone()))
                    .collect();
                restore_tree(&self.ctx.vault, &mut v);
                if let Some(items) = v
                    .pointer_mut("/response/output")
                    .and_then(Value::as_array_mut)
                {
                    for item in items.iter_mut() {
                        let id = item.get("id").and_then(Value::as_str).unwrap_or("");
                        if let Some((_, a)) = saved.iter().find(|(k, _)| k == id) {
                            item["arguments"] = json!(a);
                        }
                    }
                }
            }
            _ => restore_tree(&self.ctx.vault, &mut v),
        }
        emit_json(out, name.as_deref(), &v);
    }

    async fn release_call(&mut self, mut done: Value, name: Option<&str>, out: &mut Vec<u8>) {
        let id = done
            .pointer("/item/id")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        let held = self.calls.remove(&id);
        let tool = done
            .pointer("/item/name")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        let output_index = done.get("output_index").cloned().unwrap_or(json!(0));
        let overflow = held.as_ref().is_some_and(|c| c.overflow);
        let raw = match done.pointer("/item/arguments").and_then(Value::as_str) {
            Some(a) => a.to_string(),
            None => held.as_ref().map(|c| c.args.clone()).unwrap_or_default(),
        };
        let (verdict, restored) = if overflow || raw.len() > self.max {
            let v = CallVerdict::deny(
                "warden.arguments_too_large",
                "the tool-call arguments exceed the stream buffer limit",
            );
            self.ctx.decide_recorded(&tool, &v);
            (v, String::new())
        } else {
            let restored = self.ctx.vault.restore_json(&raw);
            (self.ctx.decide(&tool, &restored).await, restored)
        };
        if verdict.allowed() {
            let mut added = held.map(|c| c.added).unwrap_or_else(|| {
                let mut item = done["item"].clone();
                item["arguments"] = json!("");
                json!({"type": "response.output_item.added", "output_index": output_index, "item": item})
            });
            if let Some(a) = added.pointer_mut("/item/arguments") {
                *a = json!("");
            }
            emit_json(out, Some("response.output_item.added"), &added);
            emit_json(
                out,
                Some("response.function_call_arguments.delta"),
                &json!({"type": "response.function_call_arguments.delta", "item_id": id, "output_index": output_index, "delta": restored}),
            );
            emit_json(
                out,
                Some("response.function_call_arguments.done"),
                &json!({"type": "response.function_call_arguments.done", "item_id": id, "output_index": output_index, "arguments": restored}),
            );
            done["item"]["arguments"] = json!(restored);
            self.allowed.insert(id, restored);
            emit_json(out, name, &done);
        } else {
            let text = refusal_text(&tool, &verdict);
            let item = refusal_message_item(&done["item"], &text);
            let mid = item["id"].clone();
            let mut pending = item.clone();
            pending["status"] = json!("in_progress");
            pending["content"] = json!([]);
            emit_json(
                out,
                Some("response.output_item.added"),
                &json!({"type": "response.output_item.added", "output_index": output_index, "item": pending}),
            );
            emit_json(
                out,
                Some("response.output_text.delta"),
                &json!({"type": "response.output_text.delta", "item_id": mid, "output_index": output_index, "content_index": 0, "delta": text}),
            );
            emit_json(
                out,
                Some("response.output_text.done"),
                &json!({"type": "response.output_text.done", "item_id": mid, "output_index": output_index, "content_index": 0, "text": text}),
            );
            emit_json(
                out,
                Some("response.output_item.done"),
                &json!({"type": "response.output_item.done", "output_index": output_index, "item": item}),
            );
            self.denied.insert(id, item);
        }
    }

    async fn finish(&mut self, error: Option<&str>, out: &mut Vec<u8>) -> bool {
        if self.ended && error.is_none() {
            return true;
        }
        let msg = broken_message(error);
        emit_json(
            out,
            Some("error"),
            &json!({"type": "error", "code": "upstream_stream_broken", "message": msg, "param": null}),
        );
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parser_handles_split_events_and_crlf() {
        let mut p = SseParser::new(1024);
        assert!(p.push(b"event: a\nda").unwrap().is_empty());
        let evs = p
            .push(b"ta: {\"x\":1}\n\ndata: 2\r\n\r\n: ping\n\n")
            .unwrap();
        assert_eq!(evs.len(), 3);
        assert_eq!(evs[0].event.as_deref(), Some("a"));
        assert_eq!(evs[0].data.as_deref(), Some("{\"x\":1}"));
        assert_eq!(evs[1].data.as_deref(), Some("2"));
        assert_eq!(evs[2].extra, vec![": ping".to_string()]);
    }

    #[test]
    fn parser_keeps_split_utf8_whole() {
        let mut p = SseParser::new(1024);
        let msg = "data: é\n\n".as_bytes();
        assert!(p.push(&msg[..7]).unwrap().is_empty());
        let evs = p.push(&msg[7..]).unwrap();
        assert_eq!(evs[0].data.as_deref(), Some("é"));
    }

    #[test]
    fn parser_is_bounded() {
        let mut p = SseParser::new(16);
        assert_eq!(p.push(&[b'a'; 32]).unwrap_err(), SseError::TooLarge(16));
    }

    #[test]
    fn multi_line_data_round_trips() {
        let mut out = Vec::new();
        write_event(&mut out, Some("e"), Some("a\nb"), &[]);
        assert_eq!(out, b"event: e\ndata: a\ndata: b\n\n");
    }
}
