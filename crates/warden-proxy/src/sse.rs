//! Server-sent events: a bounded parser, a writer, and one transformer per wire
//! format that restores placeholders token by token (never emitting a partial
//! placeholder: the restorer holds back a possible token prefix) and holds
//! tool-call deltas until the call is complete and validated.
//!
//! Events are only released whole, from parsed UTF-8, so a multi-byte character
//! split across network chunks is never emitted broken. Most events of a stream
//! (text deltas with nothing to restore, pings, stops) need no change: they are
//! read through a borrowed view of the fields the transformer acts on and passed
//! on as the vendor wrote them. Anything the view does not account for (tool
//! calls, unknown fields next to a text delta, placeholders to restore) takes the
//! full path: parsed into a `serde_json::Value`, edited, re-serialised.
//! Memory per stream is bounded: one event at most `max` bytes, tool-call
//! arguments at most `max` bytes per stream (a larger call is denied).

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use serde::de::IgnoredAny;
use serde::{Deserialize, Deserializer};
use serde_json::{json, Value};

use crate::convo::Api;
use crate::engine::{CallVerdict, Restorer};
use crate::respond::{
    legacy_function_call_denied, refusal_message_item, refusal_text, restore_tree, ReqCtx,
};

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
        // Events are parsed where they lie; the consumed prefix is dropped once per chunk.
        let mut start = 0;
        while let Some((end, delim)) = find_blank_line(&self.buf, self.scanned.max(start)) {
            let text = std::str::from_utf8(&self.buf[start..end]).map_err(|_| SseError::Utf8)?;
            if let Some(ev) = parse_event(text) {
                out.push(ev);
            }
            start = end + delim;
        }
        self.buf.drain(..start);
        self.scanned = self.buf.len().saturating_sub(3);
        if self.buf.len() > self.max {
            return Err(SseError::TooLarge(self.max));
        }
        Ok(out)
    }

    /// Whatever remains when the stream ends (an event without its blank line).
    pub fn finish(&mut self) -> Option<SseEvent> {
        let raw = std::mem::take(&mut self.buf);
        std::str::from_utf8(&raw).ok().and_then(parse_event)
    }
}

/// The first blank line at or after `from`: (index of its first `\n`, delimiter length).
fn find_blank_line(buf: &[u8], from: usize) -> Option<(usize, usize)> {
    let mut i = from;
    while let Some(j) = memchr::memchr(b'\n', buf.get(i..)?) {
        let p = i + j;
        match buf.get(p + 1) {
            Some(b'\n') => return Some((p, 2)),
            Some(b'\r') if buf.get(p + 2) == Some(&b'\n') => return Some((p, 3)),
            None => return None,
            _ => i = p + 1,
        }
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
    let lines = data.map_or(0, |d| memchr::memchr_iter(b'\n', d.as_bytes()).count() + 1);
    // One allocation per event at most: the output buffer starts empty for each network chunk.
    out.reserve(
        extra.iter().map(|l| l.len() + 1).sum::<usize>()
            + event.map_or(0, |e| e.len() + 8)
            + data.map_or(0, str::len)
            + lines * 7
            + 1,
    );
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
        for l in d.as_bytes().split(|&b| b == b'\n') {
            out.extend_from_slice(b"data: ");
            out.extend_from_slice(l);
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
                fast: true,
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
                fast: true,
                next_seq: None,
            }),
            _ => Transformer::Chat(ChatStream {
                ctx,
                max,
                choices: BTreeMap::new(),
                template: None,
                ended: false,
                held: 0,
                fast: true,
            }),
        }
    }

    /// Every event through the full parse and re-serialisation, as a reference
    /// for what the pass-through must be equivalent to.
    #[cfg(test)]
    fn without_pass_through(mut self) -> Self {
        match &mut self {
            Transformer::Chat(t) => t.fast = false,
            Transformer::Messages(t) => t.fast = false,
            Transformer::Responses(t) => t.fast = false,
        }
        self
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

/// A JSON string field, borrowed from the event text unless it has escapes.
#[derive(Debug)]
struct Str<'a>(Cow<'a, str>);

impl<'de: 'a, 'a> Deserialize<'de> for Str<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<'a>(std::marker::PhantomData<&'a ()>);
        impl<'de: 'a, 'a> serde::de::Visitor<'de> for V<'a> {
            type Value = Str<'a>;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a string")
            }
            fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Str<'a>, E> {
                Ok(Str(Cow::Borrowed(v)))
            }
            fn visit_str<E>(self, v: &str) -> Result<Str<'a>, E> {
                Ok(Str(Cow::Owned(v.to_string())))
            }
            fn visit_string<E>(self, v: String) -> Result<Str<'a>, E> {
                Ok(Str(Cow::Owned(v)))
            }
        }
        d.deserialize_str(V(std::marker::PhantomData))
    }
}

impl std::ops::Deref for Str<'_> {
    type Target = str;
    fn deref(&self) -> &str {
        &self.0
    }
}

/// A view that only a JSON object fills. Derived struct views would also accept
/// an array (fields by position), which the full path reads as no fields at all.
struct Obj<T>(T);

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Obj<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<T>(std::marker::PhantomData<T>);
        impl<'de, T: Deserialize<'de>> serde::de::Visitor<'de> for V<T> {
            type Value = Obj<T>;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("an object")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(self, map: A) -> Result<Obj<T>, A::Error> {
                T::deserialize(serde::de::value::MapAccessDeserializer::new(map)).map(Obj)
            }
        }
        d.deserialize_map(V(std::marker::PhantomData))
    }
}

impl<T> std::ops::Deref for Obj<T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.0
    }
}

/// For `Option<T>` fields that must tell a present `null` (`Some(None)` with
/// `T = Option<_>`, or `Some` with [`IgnoredAny`]) from an absent key (`None`).
fn present<'de, D: Deserializer<'de>, T: Deserialize<'de>>(d: D) -> Result<Option<T>, D::Error> {
    T::deserialize(d).map(Some)
}

/// Whether some string in this JSON text could hold a placeholder: one needs a
/// `<`, written as is or as a `\u` escape.
pub(crate) fn may_hold_placeholder(data: &str) -> bool {
    memchr::memchr(b'<', data.as_bytes()).is_some() || has_u_escape(data.as_bytes())
}

/// Whether `b` contains the two bytes `\u`. Runs on every event: a memchr for
/// the backslash, where `memmem::find` would build a searcher on every call.
pub(crate) fn has_u_escape(b: &[u8]) -> bool {
    memchr::memchr_iter(b'\\', b).any(|i| b.get(i + 1) == Some(&b'u'))
}

/// The most bytes of a streamed tool name kept: names arrive in pieces, and
/// a vendor that never stops sending them must not grow a stream's memory.
/// No policy names a tool this long, so a cut name is still denied.
const NAME_MAX: usize = 256;

/// Appends a piece of a streamed tool name, up to [`NAME_MAX`] bytes (cut on
/// a character boundary).
fn push_name(name: &mut String, piece: &str) {
    let mut room = NAME_MAX.saturating_sub(name.len()).min(piece.len());
    while !piece.is_char_boundary(room) {
        room -= 1;
    }
    name.push_str(&piece[..room]);
}

/// The event as the vendor wrote it (framing normalised as for every event).
fn pass(out: &mut Vec<u8>, event: Option<&str>, data: &str) {
    write_event(out, event, Some(data), &[]);
}

/// What a pass-through attempt left to do.
enum Fast {
    /// Handled: passed on, dropped, or held.
    Done,
    /// Take the full path; nothing was fed to a restorer.
    Full,
    /// Take the full path with the text already fed to the restorer (and
    /// recorded): what it released, per choice for Chat (`None`: no text).
    Restored(Vec<Option<String>>),
}

// ---------------------------------------------------------------- OpenAI Chat

/// The fields of a Chat chunk the transformer acts on. A delta with any other
/// field (notably `tool_calls`) fails the parse and takes the full path; other
/// fields of the chunk or a choice are passed on by both paths as they are.
#[derive(Deserialize)]
struct ChatChunkView<'a> {
    #[serde(borrow)]
    choices: Option<Vec<Obj<ChatChoiceView<'a>>>>,
}

#[derive(Deserialize)]
struct ChatChoiceView<'a> {
    index: Option<u64>,
    #[serde(borrow)]
    delta: Option<Obj<ChatDeltaView<'a>>>,
    logprobs: Option<IgnoredAny>,
    finish_reason: Option<IgnoredAny>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ChatDeltaView<'a> {
    #[serde(default, deserialize_with = "present")]
    role: Option<IgnoredAny>,
    #[serde(default, borrow, deserialize_with = "present")]
    content: Option<Option<Str<'a>>>,
    #[serde(default, deserialize_with = "present")]
    refusal: Option<IgnoredAny>,
}

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
    /// Name of a legacy `function_call` in the stream (refused at the end).
    legacy: Option<String>,
}

/// OpenAI Chat Completions stream state.
pub struct ChatStream {
    ctx: Arc<ReqCtx>,
    max: usize,
    choices: BTreeMap<u64, ChatChoice>,
    /// The first chunk's text: the envelope of synthetic chunks, parsed when one is needed.
    template: Option<String>,
    ended: bool,
    held: usize,
    fast: bool,
}

impl ChatStream {
    fn synthetic(&self, index: u64, delta: Value, finish: Value) -> Value {
        let mut chunk = self
            .template
            .as_deref()
            .and_then(|t| serde_json::from_str::<Value>(t).ok())
            .filter(Value::is_object)
            .map(|mut t| {
                if let Some(o) = t.as_object_mut() {
                    o.remove("choices");
                    o.remove("usage");
                }
                t
            })
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
            legacy: None,
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
        if let Some(name) = st.legacy.take() {
            let v = legacy_function_call_denied();
            self.ctx.decide_recorded(&name, &v);
            refusals.push(refusal_text(&name, &v));
        }
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

    /// Pass a chunk on unchanged when that is what the full path would send: no
    /// tool calls, every text delta released as it came, no choice dropped, and
    /// no held tool call to decide at a `finish_reason`.
    async fn pass_through(&mut self, data: &str, event: Option<&str>, out: &mut Vec<u8>) -> Fast {
        let Ok(Obj(ChatChunkView {
            choices: Some(choices),
        })) = serde_json::from_str::<Obj<ChatChunkView>>(data)
        else {
            return Fast::Full;
        };
        let held_calls = |c: &Obj<ChatChoiceView>| {
            c.finish_reason.is_some()
                && self
                    .choices
                    .get(&c.index.unwrap_or(0))
                    .is_some_and(|st| !st.calls.is_empty() || st.legacy.is_some())
        };
        if choices.iter().any(held_calls) {
            return Fast::Full;
        }
        if self.template.is_none() {
            self.template = Some(data.to_string());
        }
        let ctx = self.ctx.clone();
        let mut released = Vec::with_capacity(choices.len());
        let mut unchanged = true;
        for c in &choices {
            let st = self.choice(c.index.unwrap_or(0));
            let text = match c.delta.as_ref().and_then(|d| d.content.as_ref()) {
                Some(Some(s)) => {
                    let r = st.restorer.feed(s);
                    ctx.saw_text(&r);
                    unchanged &= r == **s;
                    Some(r)
                }
                _ => None,
            };
            // The full path drops a choice left with nothing to say.
            let delta_empty = c.delta.as_ref().is_none_or(|d| {
                d.role.is_none()
                    && d.refusal.is_none()
                    && match &d.content {
                        None => true,
                        Some(None) => false,
                        Some(Some(_)) => text.as_deref() == Some(""),
                    }
            });
            unchanged &= !delta_empty || c.finish_reason.is_some() || c.logprobs.is_some();
            released.push(text);
        }
        if !unchanged {
            return Fast::Restored(released);
        }
        for c in &choices {
            if c.finish_reason.is_some() {
                self.flush_choice(c.index.unwrap_or(0), out).await;
            }
        }
        pass(out, event, data);
        Fast::Done
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
        let fast = match self.fast {
            true => self.pass_through(data, ev.event.as_deref(), out).await,
            false => Fast::Full,
        };
        let mut restored = match fast {
            Fast::Done => return,
            Fast::Full => None,
            Fast::Restored(r) => Some(r),
        };
        let Ok(mut chunk) = serde_json::from_str::<Value>(data) else {
            write_event(out, ev.event.as_deref(), Some(data), &ev.extra);
            return;
        };
        if self.template.is_none() && chunk.is_object() {
            self.template = Some(data.to_string());
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
        for (n, mut choice) in choices.into_iter().enumerate() {
            let idx = choice.get("index").and_then(Value::as_u64).unwrap_or(0);
            let max = self.max;
            let mut held_delta = 0usize;
            {
                let ctx = self.ctx.clone();
                let st = self.choice(idx);
                if let Some(delta) = choice.get_mut("delta").and_then(Value::as_object_mut) {
                    if let Some(Value::String(s)) = delta.get("content") {
                        let pre = restored.as_mut().and_then(|r| r.get_mut(n)?.take());
                        let r = pre.unwrap_or_else(|| {
                            let r = st.restorer.feed(s);
                            ctx.saw_text(&r);
                            r
                        });
                        delta.insert("content".into(), Value::String(r));
                    }
                    // The deprecated `function_call` is never released: it
                    // would bypass the tool policy (refused at the finish).
                    if let Some(fc) = delta.remove("function_call") {
                        let name = st.legacy.get_or_insert_with(String::new);
                        if let Some(n) = fc.get("name").and_then(Value::as_str) {
                            push_name(name, n);
                        }
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
                                push_name(&mut call.name, n);
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
                if denied > 0
                    && allowed == 0
                    && matches!(finish.as_str(), Some("tool_calls" | "function_call"))
                {
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
    fast: bool,
}

/// The fields of a Messages event the transformer acts on (other fields are
/// skipped; a field of an unexpected type fails the parse).
#[derive(Deserialize)]
struct MessagesView<'a> {
    #[serde(rename = "type", borrow)]
    ty: Option<Str<'a>>,
    index: Option<u64>,
    #[serde(borrow)]
    delta: Option<Obj<DeltaView<'a>>>,
    #[serde(borrow)]
    content_block: Option<Obj<TypedView<'a>>>,
}

#[derive(Deserialize)]
struct DeltaView<'a> {
    #[serde(borrow)]
    text: Option<Str<'a>>,
    #[serde(borrow)]
    partial_json: Option<Str<'a>>,
    #[serde(borrow)]
    stop_reason: Option<Str<'a>>,
}

/// The fields of a Responses event the transformer acts on.
#[derive(Deserialize)]
struct ResponsesView<'a> {
    #[serde(rename = "type", borrow)]
    ty: Option<Str<'a>>,
    #[serde(borrow)]
    delta: Option<Str<'a>>,
    #[serde(borrow)]
    item: Option<Obj<TypedView<'a>>>,
    #[serde(borrow)]
    item_id: Option<Str<'a>>,
    content_index: Option<u64>,
    sequence_number: Option<u64>,
    #[serde(borrow)]
    response: Option<Obj<ResponseView<'a>>>,
}

#[derive(Deserialize)]
struct TypedView<'a> {
    #[serde(rename = "type", borrow)]
    ty: Option<Str<'a>>,
}

impl TypedView<'_> {
    fn ty(v: Option<&Self>) -> &str {
        v.and_then(|t| t.ty.as_deref()).unwrap_or("")
    }
}

#[derive(Deserialize)]
struct ResponseView<'a> {
    #[serde(borrow)]
    id: Option<Str<'a>>,
}

impl MessagesStream {
    /// Pass an event on unchanged when that is what the full path would send.
    /// Tool-use blocks, a `stop_reason` to rewrite and text with a placeholder
    /// to restore take the full path.
    fn pass_through(&mut self, data: &str, event: Option<&str>, out: &mut Vec<u8>) -> Fast {
        let Ok(Obj(v)) = serde_json::from_str::<Obj<MessagesView>>(data) else {
            return Fast::Full;
        };
        let index = v.index.unwrap_or(0);
        let fields = v
            .delta
            .as_ref()
            .map(|d| (&d.text, &d.partial_json, &d.stop_reason));
        let nothing_to_restore = self.ctx.vault.is_empty() || !may_hold_placeholder(data);
        match v.ty.as_deref().unwrap_or("") {
            "content_block_delta" => match self.blocks.get_mut(&index) {
                Some(Block::Text(r)) => {
                    if let Some((Some(t), _, _)) = fields {
                        let restored = r.feed(t);
                        self.ctx.saw_text(&restored);
                        if restored.is_empty() {
                            return Fast::Done;
                        }
                        if restored != **t {
                            return Fast::Restored(vec![Some(restored)]);
                        }
                    }
                }
                Some(Block::Tool { json, overflow, .. }) => {
                    if let Some((_, Some(p), _)) = fields {
                        if json.len() + p.len() > self.max {
                            *overflow = true;
                        } else if !*overflow {
                            json.push_str(p);
                        }
                    }
                    return Fast::Done;
                }
                _ => {}
            },
            "content_block_stop" => match self.blocks.get(&index) {
                Some(Block::Tool { .. }) => return Fast::Full,
                Some(Block::Text(_)) => {
                    if let Some(Block::Text(mut r)) = self.blocks.remove(&index) {
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
                }
                _ => {
                    self.blocks.remove(&index);
                }
            },
            "message_delta" => {
                let stop = fields.and_then(|(_, _, s)| s.as_deref());
                if self.denied > 0 && self.allowed == 0 && stop == Some("tool_use") {
                    return Fast::Full;
                }
            }
            "message_stop" => self.ended = true,
            "message_start" if !nothing_to_restore => return Fast::Full,
            "content_block_start" => match TypedView::ty(v.content_block.as_deref()) {
                "text" if nothing_to_restore => {
                    let r = Restorer::new(self.ctx.vault.clone(), false);
                    self.blocks.insert(index, Block::Text(r));
                }
                "text" | "tool_use" => return Fast::Full,
                _ => {
                    self.blocks.insert(index, Block::Other);
                }
            },
            _ => {}
        }
        pass(out, event, data);
        Fast::Done
    }

    async fn on_event(&mut self, ev: SseEvent, out: &mut Vec<u8>) {
        let Some(data) = ev.data.as_deref() else {
            write_event(out, ev.event.as_deref(), None, &ev.extra);
            return;
        };
        let fast = match self.fast {
            true => self.pass_through(data, ev.event.as_deref(), out),
            false => Fast::Full,
        };
        let mut restored = match fast {
            Fast::Done => return,
            Fast::Full => None,
            Fast::Restored(mut r) => r.pop().flatten(),
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
                        let restored = restored.take().unwrap_or_else(|| {
                            let restored = r.feed(t);
                            self.ctx.saw_text(&restored);
                            restored
                        });
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
    fast: bool,
    /// The `sequence_number` of the next event sent, once the vendor's events
    /// carry them: Warden holds some events back and writes others, so it
    /// numbers what it sends itself, keeping the numbers consecutive.
    next_seq: Option<u64>,
}

impl ResponsesStream {
    /// A vendor event numbered `seq` arrives: the first number seen starts the count.
    fn saw_seq(&mut self, seq: Option<u64>) {
        if self.next_seq.is_none() {
            self.next_seq = seq;
        }
    }

    /// Give an event about to be sent the next number (when the stream has numbers).
    fn number(&mut self, v: &mut Value) {
        if let (Some(n), Some(o)) = (self.next_seq, v.as_object_mut()) {
            o.insert("sequence_number".into(), json!(n));
            self.next_seq = Some(n + 1);
        }
    }

    /// [`emit_json`] with the next sequence number.
    fn emit(&mut self, out: &mut Vec<u8>, event: Option<&str>, mut v: Value) {
        self.number(&mut v);
        emit_json(out, event, &v);
    }

    /// Pass an event on unchanged when that is what the full path would send.
    /// Function calls, the end of a text part, the final response and anything
    /// with a placeholder to restore take the full path.
    fn pass_through(&mut self, data: &str, event: Option<&str>, out: &mut Vec<u8>) -> Fast {
        let Ok(Obj(v)) = serde_json::from_str::<Obj<ResponsesView>>(data) else {
            return Fast::Full;
        };
        self.saw_seq(v.sequence_number);
        // Passed on as written only while its number is the one due.
        let numbered_right = v.sequence_number == self.next_seq;
        let item_id = v.item_id.as_deref().unwrap_or("");
        let nothing_to_restore = self.ctx.vault.is_empty() || !may_hold_placeholder(data);
        let function_call = TypedView::ty(v.item.as_deref()) == "function_call";
        match v.ty.as_deref().unwrap_or("") {
            "response.output_item.added" | "response.output_item.done" if function_call => {
                return Fast::Full
            }
            "response.function_call_arguments.delta" if self.calls.contains_key(item_id) => {
                if let (Some(c), Some(d)) = (self.calls.get_mut(item_id), v.delta.as_deref()) {
                    if c.args.len() + d.len() > self.max {
                        c.overflow = true;
                    } else if !c.overflow {
                        c.args.push_str(d);
                    }
                }
                return Fast::Done;
            }
            "response.function_call_arguments.done" if self.calls.contains_key(item_id) => {
                return Fast::Done
            }
            "response.output_text.delta" => {
                let key = (item_id.to_string(), v.content_index.unwrap_or(0));
                let vault = self.ctx.vault.clone();
                let r = self
                    .texts
                    .entry(key)
                    .or_insert_with(|| Restorer::new(vault, false));
                if let Some(d) = &v.delta {
                    let restored = r.feed(d);
                    self.ctx.saw_text(&restored);
                    if restored.is_empty() {
                        return Fast::Done;
                    }
                    if restored != **d || !numbered_right {
                        return Fast::Restored(vec![Some(restored)]);
                    }
                } else if !numbered_right {
                    return Fast::Full;
                }
            }
            _ if !numbered_right => return Fast::Full,
            "response.output_text.done"
            | "response.completed"
            | "response.incomplete"
            | "response.failed"
            | "response.done" => return Fast::Full,
            "response.created" | "response.in_progress" if nothing_to_restore => {
                if let Some(id) = v.response.as_ref().and_then(|r| r.id.as_deref()) {
                    self.response_id = Some(id.to_string());
                }
            }
            _ if nothing_to_restore => {}
            _ => return Fast::Full,
        }
        if let Some(n) = self.next_seq {
            self.next_seq = Some(n + 1);
        }
        pass(out, event, data);
        Fast::Done
    }

    async fn on_event(&mut self, ev: SseEvent, out: &mut Vec<u8>) {
        let Some(data) = ev.data.as_deref() else {
            write_event(out, ev.event.as_deref(), None, &ev.extra);
            return;
        };
        let fast = match self.fast {
            true => self.pass_through(data, ev.event.as_deref(), out),
            false => Fast::Full,
        };
        let mut restored = match fast {
            Fast::Done => return,
            Fast::Full => None,
            Fast::Restored(mut r) => r.pop().flatten(),
        };
        let Ok(mut v) = serde_json::from_str::<Value>(data) else {
            write_event(out, ev.event.as_deref(), Some(data), &ev.extra);
            return;
        };
        self.saw_seq(v.get("sequence_number").and_then(Value::as_u64));
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
                    let restored = restored.take().unwrap_or_else(|| {
                        let restored = r.feed(d);
                        self.ctx.saw_text(&restored);
                        restored
                    });
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
                        self.emit(out, Some("response.output_text.delta"), d);
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
        self.emit(out, name.as_deref(), v);
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
            self.emit(out, Some("response.output_item.added"), added);
            self.emit(
                out,
                Some("response.function_call_arguments.delta"),
                json!({"type": "response.function_call_arguments.delta", "item_id": id, "output_index": output_index, "delta": restored}),
            );
            self.emit(
                out,
                Some("response.function_call_arguments.done"),
                json!({"type": "response.function_call_arguments.done", "item_id": id, "output_index": output_index, "arguments": restored}),
            );
            done["item"]["arguments"] = json!(restored);
            self.allowed.insert(id, restored);
            self.emit(out, name, done);
        } else {
            let text = refusal_text(&tool, &verdict);
            let item = refusal_message_item(&done["item"], &text);
            let mid = item["id"].clone();
            let mut pending = item.clone();
            pending["status"] = json!("in_progress");
            pending["content"] = json!([]);
            self.emit(
                out,
                Some("response.output_item.added"),
                json!({"type": "response.output_item.added", "output_index": output_index, "item": pending}),
            );
            // The event sequence of a vendor's own text item: the SDKs' stream
            // helpers add text only to a content part announced before it.
            let part = json!({"type": "output_text", "text": "", "annotations": []});
            self.emit(
                out,
                Some("response.content_part.added"),
                json!({"type": "response.content_part.added", "item_id": mid, "output_index": output_index, "content_index": 0, "part": part}),
            );
            self.emit(
                out,
                Some("response.output_text.delta"),
                json!({"type": "response.output_text.delta", "item_id": mid, "output_index": output_index, "content_index": 0, "delta": text, "logprobs": []}),
            );
            self.emit(
                out,
                Some("response.output_text.done"),
                json!({"type": "response.output_text.done", "item_id": mid, "output_index": output_index, "content_index": 0, "text": text, "logprobs": []}),
            );
            self.emit(
                out,
                Some("response.content_part.done"),
                json!({"type": "response.content_part.done", "item_id": mid, "output_index": output_index, "content_index": 0, "part": item["content"][0]}),
            );
            self.emit(
                out,
                Some("response.output_item.done"),
                json!({"type": "response.output_item.done", "output_index": output_index, "item": item}),
            );
            self.denied.insert(id, item);
        }
    }

    async fn finish(&mut self, error: Option<&str>, out: &mut Vec<u8>) -> bool {
        if self.ended && error.is_none() {
            return true;
        }
        let msg = broken_message(error);
        self.emit(
            out,
            Some("error"),
            json!({"type": "error", "code": "upstream_stream_broken", "message": msg, "param": null}),
        );
        false
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    #[test]
    fn streamed_names_are_bounded() {
        let mut name = String::new();
        for _ in 0..1000 {
            push_name(&mut name, "transfer_é");
        }
        assert!(name.len() <= NAME_MAX && name.len() > NAME_MAX - 12);
        assert!(name.starts_with("transfer_étransfer_é"));
        let mut short = String::from("get_");
        push_name(&mut short, "balance");
        assert_eq!(short, "get_balance");
    }

    #[test]
    fn u_escape_search_matches_memmem() {
        // Every text of up to seven bytes over a backslash, `u` and a filler.
        let mut cases: Vec<Vec<u8>> = vec![Vec::new()];
        for _ in 0..7 {
            let mut next = Vec::new();
            for c in &cases {
                for &b in b"\\ua" {
                    let mut c = c.clone();
                    c.push(b);
                    next.push(c);
                }
            }
            for c in &next {
                assert_eq!(
                    has_u_escape(c),
                    memchr::memmem::find(c, b"\\u").is_some(),
                    "{:?}",
                    String::from_utf8_lossy(c)
                );
            }
            cases = next;
        }
    }

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

    fn event() -> impl proptest::strategy::Strategy<Value = SseEvent> {
        use proptest::prelude::*;
        // Field values never hold a line break (a `data:` value with one is
        // several `data:` lines, which the joined `data` stands for).
        let value = "[^\r\n]{0,12}";
        (
            proptest::option::of("[a-z_.]{1,10}"),
            proptest::option::of(prop::collection::vec(value, 1..3)),
            prop::collection::vec(value.prop_map(|c| format!(":{c}")), 0..2),
        )
            .prop_filter("an event has a field", |(e, d, x)| {
                e.is_some() || d.is_some() || !x.is_empty()
            })
            .prop_map(|(event, data, extra)| SseEvent {
                event,
                data: data.map(|lines| lines.join("\n")),
                extra,
            })
    }

    proptest::proptest! {
        /// Events written with `\n` or `\r\n` line ends and cut into chunks
        /// anywhere (inside a delimiter, inside a UTF-8 character) come out
        /// whole, in order, and as written.
        #[test]
        fn parser_gives_back_written_events_however_chunked(
            events in proptest::collection::vec(event(), 0..6),
            crlf: bool,
            cuts in proptest::collection::vec(proptest::num::usize::ANY, 0..12),
        ) {
            let eol = if crlf { "\r\n" } else { "\n" };
            let mut wire = String::new();
            for ev in &events {
                if let Some(e) = &ev.event {
                    wire += &format!("event: {e}{eol}");
                }
                for line in ev.data.iter().flat_map(|d| d.split('\n')) {
                    wire += &format!("data: {line}{eol}");
                }
                for x in &ev.extra {
                    wire += &format!("{x}{eol}");
                }
                wire += eol;
            }
            let bytes = wire.as_bytes();
            let mut points: Vec<usize> = cuts.iter().map(|c| c % (bytes.len() + 1)).collect();
            points.sort_unstable();
            let mut p = SseParser::new(1 << 16);
            let mut got = Vec::new();
            let mut at = 0;
            for cut in points.into_iter().chain([bytes.len()]) {
                got.extend(p.push(&bytes[at..cut]).unwrap());
                at = cut;
            }
            proptest::prop_assert_eq!(p.finish(), None);
            proptest::prop_assert_eq!(got, events);
        }
    }

    #[test]
    fn parser_is_bounded() {
        let mut p = SseParser::new(16);
        assert_eq!(p.push(&[b'a'; 32]).unwrap_err(), SseError::TooLarge(16));
    }

    /// A request context over the demo engines, with a vault holding the tokens
    /// of an e-mail address and a card number (returned: the placeholders).
    pub(crate) async fn test_ctx(api: Api, dir: &std::path::Path) -> (Arc<ReqCtx>, Vec<String>) {
        let mut cfg = crate::config::Config::default();
        cfg.audit.path = dir.join("audit.jsonl");
        cfg.policy.state_url = Some(format!("sqlite:{}", dir.join("state.sqlite").display()));
        cfg.store.token_key_env = None;
        let state = crate::state::AppState::build(cfg).await.unwrap();
        let mut vault = crate::engine::Vault::with_key(state.token_key.clone());
        let text = "mail jane.doe@example.com, card 4111 1111 1111 1111";
        let found = state.engines.scan(text, None);
        let redacted = state.engines.redact(text, &found, &mut vault);
        let tokens: Vec<String> = redacted
            .split('<')
            .skip(1)
            .filter_map(|t| t.split_once('>').map(|(t, _)| format!("<{t}>")))
            .collect();
        assert_eq!(tokens.len(), 2, "{redacted}");
        (ctx_like(&state_ctx(state, vault, api)), tokens)
    }

    pub(crate) fn state_ctx(
        state: Arc<crate::state::AppState>,
        vault: crate::engine::Vault,
        api: Api,
    ) -> ReqCtx {
        ReqCtx {
            state,
            principal: crate::auth::Principal::anonymous(),
            request_id: "test".into(),
            api,
            vault: Arc::new(vault),
            tools: std::sync::Mutex::new(Vec::new()),
            output: std::sync::Mutex::new(String::new()),
        }
    }

    /// A fresh context (no decisions, no text seen) for the same request.
    pub(crate) fn ctx_like(c: &ReqCtx) -> Arc<ReqCtx> {
        Arc::new(state_ctx(c.state.clone(), (*c.vault).clone(), c.api))
    }

    /// Events of an output stream as (event name, data as JSON or as text).
    fn events_of(out: &[u8]) -> Vec<(Option<String>, Result<Value, String>)> {
        std::str::from_utf8(out)
            .unwrap()
            .split("\n\n")
            .filter(|e| !e.is_empty())
            .map(|e| {
                let (mut name, mut data) = (None, Vec::new());
                for l in e.lines() {
                    if let Some(x) = l.strip_prefix("event: ") {
                        name = Some(x.to_string());
                    } else if let Some(x) = l.strip_prefix("data: ") {
                        data.push(x);
                    }
                }
                let data = data.join("\n");
                (name, serde_json::from_str(&data).map_err(|_| data))
            })
            .collect()
    }

    /// Runs `stream` (SSE text) through the transformer with and without the
    /// pass-through, fed in pieces of every size from 1 to 9 bytes: the events
    /// sent, the model text recorded for the output checks and the tool
    /// decisions must be the same.
    async fn same_with_and_without_pass_through(base: &ReqCtx, stream: &str) {
        for piece in 1..10 {
            let mut runs = Vec::new();
            for fast in [true, false] {
                let ctx = ctx_like(base);
                let mut t = Transformer::new(ctx.clone(), 1 << 16);
                if !fast {
                    t = t.without_pass_through();
                }
                let mut p = SseParser::new(1 << 16);
                let mut out = Vec::new();
                for c in stream.as_bytes().chunks(piece) {
                    for ev in p.push(c).unwrap() {
                        t.on_event(ev, &mut out).await;
                    }
                }
                if let Some(ev) = p.finish() {
                    t.on_event(ev, &mut out).await;
                }
                let ok = t.finish(None, &mut out).await;
                let tools: Vec<(String, String, Vec<String>)> = ctx
                    .tools
                    .lock()
                    .unwrap()
                    .iter()
                    .map(|r| (r.tool.clone(), r.verdict.clone(), r.rules.clone()))
                    .collect();
                let text = ctx.output.lock().unwrap().clone();
                runs.push((
                    events_of(&out),
                    text,
                    tools,
                    ok,
                    t.response_id().map(String::from),
                ));
            }
            assert_eq!(runs[0], runs[1], "piece size {piece}:\n{stream}");
        }
    }

    fn data(v: &Value) -> String {
        format!("data: {v}\n\n")
    }

    fn named(e: &str, v: &Value) -> String {
        format!("event: {e}\ndata: {v}\n\n")
    }

    #[tokio::test]
    async fn chat_pass_through_is_equivalent() {
        let dir = tempfile::tempdir().unwrap();
        let (base, tok) = test_ctx(Api::Chat, dir.path()).await;
        let (email, card) = (&tok[0], &tok[1]);
        let chunk = |choices: Value| {
            json!({"id": "c1", "object": "chat.completion.chunk", "created": 1, "model": "m",
                "system_fingerprint": null, "choices": choices})
        };
        let delta = |i: u64, d: Value, finish: Value| json!({"index": i, "delta": d, "logprobs": null, "finish_reason": finish});
        let text = format!("Hé \"{email}\" — ünï\n ✓ {card}. <b>x</b> <EMAIL_0badf00d> 1 < 2");
        let mut s = data(&chunk(json!([delta(
            0,
            json!({"role": "assistant", "content": "", "refusal": null}),
            Value::Null
        )])));
        // The text in deltas of 1 to 5 characters, a placeholder cut anywhere.
        for n in 1..6 {
            let chars: Vec<char> = text.chars().collect();
            for piece in chars.chunks(n) {
                let p: String = piece.iter().collect();
                s += &data(&chunk(json!([delta(
                    0,
                    json!({"content": p}),
                    Value::Null
                )])));
            }
        }
        // Text with the finish reason in the same chunk, while a placeholder is held.
        s += &data(&chunk(json!([delta(
            0,
            json!({"content": format!("end {}", &email[..4])}),
            Value::Null
        )])));
        s += &data(&chunk(
            json!([delta(0, json!({"content": &email[4..]}), json!("stop")), {"index": 1, "delta": {}, "finish_reason": null}]),
        ));
        // Two choices, an empty delta, a null content, an extra field, logprobs.
        s += &data(&chunk(json!([
            delta(1, json!({"content": &card[..3]}), Value::Null),
            delta(2, json!({"content": null}), Value::Null)
        ])));
        s += &data(&chunk(
            json!([delta(1, json!({}), Value::Null), {"index": 2, "delta": {"content": "x"}, "content_filter_results": {}}]),
        ));
        s += &data(&chunk(
            json!([{"index": 1, "delta": {"content": ""}, "logprobs": {"content": []}}]),
        ));
        // Tool calls, one allowed, one denied, split across chunks.
        let args = json!({"order_id": "ord_1001", "amount": "1.00", "currency": "USD", "reason": format!("for {email}")}).to_string();
        let (a1, a2) = args.split_at(20);
        s += &data(&chunk(json!([delta(
            3,
            json!({"tool_calls": [{"index": 0, "id": "call_1", "type": "function", "function": {"name": "issue_refund", "arguments": a1}}]}),
            Value::Null
        )])));
        s += &data(&chunk(json!([delta(
            3,
            json!({"tool_calls": [{"index": 0, "function": {"arguments": a2}}]}),
            Value::Null
        )])));
        s += &data(&chunk(json!([delta(
            3,
            json!({"content": "and", "tool_calls": [{"index": 1, "id": "call_2", "type": "function", "function": {"name": "drop_tables", "arguments": "{}"}}]}),
            Value::Null
        )])));
        s += &data(&chunk(json!([delta(3, json!({}), json!("tool_calls"))])));
        s += &data(&chunk(json!([delta(
            4,
            json!({"tool_calls": [{"index": 0, "id": "call_3", "type": "function", "function": {"name": "drop_tables", "arguments": "{}"}}]}),
            Value::Null
        )])));
        s += &data(&chunk(json!([delta(4, json!({}), json!("tool_calls"))])));
        // Usage, duplicate keys, odd types, no choices, not JSON, comments, CRLF.
        s += &data(&json!({"id": "c1", "choices": [], "usage": {"total_tokens": 3}}));
        s += &data(
            &json!({"id": "c1", "choices": [delta(0, json!({}), Value::Null)], "usage": null}),
        );
        s += "data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"a\",\"content\":\"b\"}}]}\n\n";
        s += "data: {\"choices\":[{\"index\":\"0\",\"delta\":{\"content\":\"c\"}}]}\n\n";
        s += &data(&json!({"id": "c1", "note": format!("no choices {email}")}));
        s += "data: not json\n\n: keep-alive\n\nid: 7\r\ndata: {\"choices\":[{\"delta\":{\"content\":\"\\u003cx\"}}]}\r\n\r\n";
        s += &data(&chunk(json!([delta(
            0,
            json!({"content": "\u{1b}[31m"}),
            json!("length")
        )])));
        // Views by position: arrays where the full path expects objects.
        s += &data(&json!([[{"index": 0, "delta": {"content": "arr"}}]]));
        s += &data(&json!({"choices": [[0, {"content": "pos"}]]}));
        s += &data(&json!({"choices": [{"index": 0, "delta": ["pos"]}]}));
        s += "data: [DONE]\n\n";
        same_with_and_without_pass_through(&base, &s).await;
    }

    #[tokio::test]
    async fn messages_pass_through_is_equivalent() {
        let dir = tempfile::tempdir().unwrap();
        let (base, tok) = test_ctx(Api::Messages, dir.path()).await;
        let (email, card) = (&tok[0], &tok[1]);
        let mut s = named(
            "message_start",
            &json!({"type": "message_start", "message": {"id": "m1", "content": [], "note": email}}),
        );
        s += named(
            "message_start",
            &json!({"type": "message_start", "message": {"id": "m1", "content": []}}),
        )
        .as_str();
        s += &named(
            "content_block_start",
            &json!({"type": "content_block_start", "index": 0, "content_block": {"type": "thinking", "thinking": ""}}),
        );
        s += &named(
            "content_block_delta",
            &json!({"type": "content_block_delta", "index": 0, "delta": {"type": "thinking_delta", "thinking": format!("about {email}")}}),
        );
        s += &named(
            "content_block_stop",
            &json!({"type": "content_block_stop", "index": 0}),
        );
        s += &named(
            "content_block_start",
            &json!({"type": "content_block_start", "index": 1, "content_block": {"type": "text", "text": ""}}),
        );
        let text = format!("Hé \"{email}\" —\n {card} <i> <EMAIL_0badf00d>");
        let chars: Vec<char> = text.chars().collect();
        for n in 1..5 {
            for piece in chars.chunks(n) {
                let p: String = piece.iter().collect();
                s += &named(
                    "content_block_delta",
                    &json!({"type": "content_block_delta", "index": 1, "delta": {"type": "text_delta", "text": p}}),
                );
            }
        }
        s += &named("ping", &json!({"type": "ping"}));
        s += &named(
            "content_block_delta",
            &json!({"type": "content_block_delta", "index": 1, "delta": {"type": "text_delta", "text": &email[..5]}}),
        );
        s += &named(
            "content_block_stop",
            &json!({"type": "content_block_stop", "index": 1}),
        );
        s += &named(
            "content_block_start",
            &json!({"type": "content_block_start", "index": 2, "content_block": {"type": "text", "text": format!("pre {card}")}}),
        );
        s += &named(
            "content_block_delta",
            &json!({"type": "content_block_delta", "index": 2, "delta": {"type": "text_delta", "text": "x", "text2": email}}),
        );
        s += &named(
            "content_block_delta",
            &json!({"type": "content_block_delta", "index": 2, "delta": "odd"}),
        );
        s += &named(
            "content_block_stop",
            &json!({"type": "content_block_stop", "index": 2}),
        );
        let args = json!({"order_id": "ord_1001", "amount": "1.00", "currency": "USD", "reason": format!("for {email}")}).to_string();
        let (a1, a2) = args.split_at(15);
        s += &named(
            "content_block_start",
            &json!({"type": "content_block_start", "index": 3, "content_block": {"type": "tool_use", "id": "t1", "name": "issue_refund", "input": {}}}),
        );
        s += &named(
            "content_block_delta",
            &json!({"type": "content_block_delta", "index": 3, "delta": {"type": "input_json_delta", "partial_json": a1}}),
        );
        s += &named(
            "content_block_delta",
            &json!({"type": "content_block_delta", "index": 3, "delta": {"type": "input_json_delta", "partial_json": a2}}),
        );
        s += &named(
            "content_block_stop",
            &json!({"type": "content_block_stop", "index": 3}),
        );
        s += &named(
            "content_block_start",
            &json!({"type": "content_block_start", "index": 4, "content_block": {"type": "tool_use", "id": "t2", "name": "drop_tables", "input": {}}}),
        );
        s += &named(
            "content_block_stop",
            &json!({"type": "content_block_stop", "index": 4}),
        );
        s += &named(
            "message_delta",
            &json!({"type": "message_delta", "delta": {"stop_reason": "tool_use", "stop_sequence": null}, "usage": {"output_tokens": 5}}),
        );
        s += "event: message_delta\ndata: {\"type\":\"message_delta\",\"type\":\"x\"}\n\n";
        s += "data: not json\n\n";
        s += &named(
            "content_block_start",
            &json!({"type": "content_block_start", "index": 5, "content_block": {"type": "text", "text": ""}}),
        );
        s += &named(
            "content_block_delta",
            &json!(["content_block_delta", 5, {"text": "arr"}]),
        );
        s += &named(
            "content_block_delta",
            &json!({"type": "content_block_delta", "index": 5, "delta": ["arr"]}),
        );
        s += &named(
            "content_block_stop",
            &json!({"type": "content_block_stop", "index": 5}),
        );
        s += &named("message_stop", &json!({"type": "message_stop"}));
        same_with_and_without_pass_through(&base, &s).await;
        // Every tool call denied: the stop reason is rewritten.
        let mut s = named(
            "content_block_start",
            &json!({"type": "content_block_start", "index": 0, "content_block": {"type": "tool_use", "id": "t2", "name": "drop_tables", "input": {}}}),
        );
        s += &named(
            "content_block_stop",
            &json!({"type": "content_block_stop", "index": 0}),
        );
        s += &named(
            "message_delta",
            &json!({"type": "message_delta", "delta": {"stop_reason": "tool_use"}}),
        );
        s += &named("message_stop", &json!({"type": "message_stop"}));
        same_with_and_without_pass_through(&base, &s).await;
    }

    #[tokio::test]
    async fn responses_pass_through_is_equivalent() {
        let dir = tempfile::tempdir().unwrap();
        let (base, tok) = test_ctx(Api::Responses, dir.path()).await;
        let (email, card) = (&tok[0], &tok[1]);
        // Numbered as the vendor numbers them, from 0.
        let seq = std::cell::Cell::new(0u64);
        let ev = |ty: &str, mut v: Value| {
            v["type"] = json!(ty);
            v["sequence_number"] = json!(seq.replace(seq.get() + 1));
            named(ty, &v)
        };
        let mut s = ev(
            "response.created",
            json!({"response": {"id": "resp_1", "output": []}}),
        );
        s += &ev(
            "response.in_progress",
            json!({"response": {"id": "resp_1", "instructions": email}}),
        );
        s += &ev(
            "response.output_item.added",
            json!({"output_index": 0, "item": {"type": "message", "id": "msg_1", "content": []}}),
        );
        s += &ev(
            "response.content_part.added",
            json!({"item_id": "msg_1", "output_index": 0, "content_index": 0, "part": {"type": "output_text", "text": ""}}),
        );
        let text = format!("Hé \"{email}\" —\n {card} <i> <EMAIL_0badf00d>");
        let chars: Vec<char> = text.chars().collect();
        for n in 1..5 {
            for piece in chars.chunks(n) {
                let p: String = piece.iter().collect();
                s += &ev(
                    "response.output_text.delta",
                    json!({"item_id": "msg_1", "output_index": 0, "content_index": 0, "delta": p, "obfuscation": "x"}),
                );
            }
        }
        s += &ev(
            "response.output_text.delta",
            json!({"item_id": "msg_1", "output_index": 0, "content_index": 0, "delta": &card[..6]}),
        );
        s += &ev(
            "response.output_text.delta",
            json!({"item_id": "msg_1", "output_index": 0, "content_index": 1}),
        );
        s += &ev(
            "response.output_text.done",
            json!({"item_id": "msg_1", "output_index": 0, "content_index": 0, "text": text}),
        );
        s += &ev(
            "response.content_part.done",
            json!({"item_id": "msg_1", "output_index": 0, "content_index": 0, "part": {"type": "output_text", "text": text}}),
        );
        s += &ev(
            "response.output_item.done",
            json!({"output_index": 0, "item": {"type": "message", "id": "msg_1", "content": [{"type": "output_text", "text": text}]}}),
        );
        s += &ev(
            "response.reasoning_summary_text.delta",
            json!({"item_id": "rs_1", "delta": format!("hm {email}")}),
        );
        let args = json!({"order_id": "ord_1001", "amount": "1.00", "currency": "USD", "reason": format!("for {email}")}).to_string();
        let (a1, a2) = args.split_at(15);
        s += &ev(
            "response.output_item.added",
            json!({"output_index": 1, "item": {"type": "function_call", "id": "fc_1", "call_id": "call_1", "name": "issue_refund", "arguments": ""}}),
        );
        s += &ev(
            "response.function_call_arguments.delta",
            json!({"item_id": "fc_1", "output_index": 1, "delta": a1}),
        );
        s += &ev(
            "response.function_call_arguments.delta",
            json!({"item_id": "fc_1", "output_index": 1, "delta": a2}),
        );
        s += &ev(
            "response.function_call_arguments.done",
            json!({"item_id": "fc_1", "output_index": 1, "arguments": args}),
        );
        s += &ev(
            "response.output_item.done",
            json!({"output_index": 1, "item": {"type": "function_call", "id": "fc_1", "call_id": "call_1", "name": "issue_refund", "arguments": args}}),
        );
        s += &ev(
            "response.output_item.added",
            json!({"output_index": 2, "item": {"type": "function_call", "id": "fc_2", "call_id": "call_2", "name": "drop_tables", "arguments": ""}}),
        );
        s += &ev(
            "response.function_call_arguments.delta",
            json!({"item_id": "fc_2", "output_index": 2, "delta": "{}"}),
        );
        s += &ev(
            "response.function_call_arguments.delta",
            json!({"item_id": "fc_9", "output_index": 2, "delta": email}),
        );
        s += &ev(
            "response.output_item.done",
            json!({"output_index": 2, "item": {"type": "function_call", "id": "fc_2", "call_id": "call_2", "name": "drop_tables", "arguments": "{}"}}),
        );
        s += &ev(
            "response.output_text.delta",
            json!({"item_id": "msg_2", "delta": 5}),
        );
        s += &named(
            "response.output_text.delta",
            &json!(["response.output_text.delta", "msg_1", 0, "arr"]),
        );
        s += &ev(
            "response.completed",
            json!({"response": {"id": "resp_1", "output": [
            {"type": "message", "id": "msg_1", "content": [{"type": "output_text", "text": text}]},
            {"type": "function_call", "id": "fc_1", "name": "issue_refund", "arguments": args},
            {"type": "function_call", "id": "fc_2", "name": "drop_tables", "arguments": "{}"}]}}),
        );
        same_with_and_without_pass_through(&base, &s).await;
        // Warden held the calls' events back and wrote its own: what it sends
        // is numbered 0, 1, 2, … all the same.
        let mut t = Transformer::new(ctx_like(&base), 1 << 16);
        let mut p = SseParser::new(1 << 16);
        let mut out = Vec::new();
        for ev in p.push(s.as_bytes()).unwrap() {
            t.on_event(ev, &mut out).await;
        }
        let numbers: Vec<Option<u64>> = events_of(&out)
            .iter()
            .filter_map(|(_, d)| d.as_ref().ok())
            .filter(|d| d.is_object())
            .map(|d| d["sequence_number"].as_u64())
            .collect();
        let want: Vec<Option<u64>> = (0..numbers.len() as u64).map(Some).collect();
        assert_eq!(numbers, want);
        assert_ne!(
            numbers.len() as u64,
            seq.get(),
            "no event was held or added"
        );
    }

    #[tokio::test]
    async fn events_with_nothing_to_change_pass_as_written() {
        let dir = tempfile::tempdir().unwrap();
        let (chat, _) = test_ctx(Api::Chat, dir.path()).await;
        let streams = [
            (Api::Chat, "data: {\"id\":\"c\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"caf\\u00e9 \\\"ok\\\"\\n\"},\"logprobs\":null,\"finish_reason\":null}],\"created\":1.0}\n\n"),
            (Api::Messages, "event: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"text\",\"text\":\"\"}}\n\nevent: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"caf\\u00e9\"}}\n\nevent: ping\ndata: {\"type\": \"ping\"}\n\n"),
            (Api::Responses, "event: response.output_text.delta\ndata: {\"type\":\"response.output_text.delta\",\"item_id\":\"m\",\"content_index\":0,\"delta\":\"caf\\u00e9\"}\n\n"),
        ];
        for (api, stream) in streams {
            let ctx = state_ctx(chat.state.clone(), (*chat.vault).clone(), api);
            let mut t = Transformer::new(Arc::new(ctx), 1 << 16);
            let mut out = Vec::new();
            for ev in SseParser::new(1 << 16).push(stream.as_bytes()).unwrap() {
                t.on_event(ev, &mut out).await;
            }
            assert_eq!(String::from_utf8(out).unwrap(), stream);
        }
    }

    #[test]
    fn multi_line_data_round_trips() {
        let mut out = Vec::new();
        write_event(&mut out, Some("e"), Some("a\nb"), &[]);
        assert_eq!(out, b"event: e\ndata: a\ndata: b\n\n");
    }
}
