//! The canonical view of a request: every position where user-controlled text
//! can hide, with where it came from, as paths into the original JSON.
//!
//! Adapters never rebuild the request; they list the string leaves to guard and
//! the pipeline edits those leaves in place. Fields Warden does not know stay
//! byte-for-byte as the client sent them (serde_json with `preserve_order`),
//! and reasoning / thinking blocks are listed as skipped, never touched.

use serde_json::Value;

use crate::engine::Source;

/// The wire format of a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Api {
    /// OpenAI `POST /v1/chat/completions`.
    Chat,
    /// OpenAI `POST /v1/responses`.
    Responses,
    /// Anthropic `POST /v1/messages`.
    Messages,
    /// OpenAI `POST /v1/embeddings`.
    Embeddings,
}

impl Api {
    /// Route label for metrics and audit.
    pub fn route(self) -> &'static str {
        match self {
            Api::Chat => "chat.completions",
            Api::Responses => "responses",
            Api::Messages => "messages",
            Api::Embeddings => "embeddings",
        }
    }
}

/// One step of a path into the JSON.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Seg {
    /// Object key: always a wire-format name the adapters know, so a path
    /// costs no allocation per key.
    K(&'static str),
    /// Array index.
    I(usize),
}

/// How a leaf holds its text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A plain string.
    Text,
    /// A string that holds JSON (OpenAI tool-call `arguments`).
    JsonArgs,
    /// Any JSON value: every string leaf under it, with its key as context.
    Tree,
    /// Base64 text (optionally a `data:` URL) of a text document.
    Base64Text,
}

/// A position to guard.
#[derive(Debug, Clone)]
pub struct Part {
    /// Path from the request root.
    pub path: Vec<Seg>,
    /// Who wrote it, for injection thresholds.
    pub source: Source,
    /// How the text is held.
    pub kind: Kind,
}

/// A position that was not scanned, and why (recorded honestly in the audit).
#[derive(Debug, Clone, serde::Serialize)]
pub struct Skipped {
    /// RFC 6901 pointer.
    pub path: String,
    /// Why: `image`, `audio`, `binary_document`, `thinking`, `reasoning`, ...
    pub reason: &'static str,
}

/// All positions of one request.
#[derive(Debug, Default)]
pub struct Conversation {
    /// Positions to scan.
    pub parts: Vec<Part>,
    /// Positions not scanned.
    pub skipped: Vec<Skipped>,
}

impl Conversation {
    fn text(&mut self, base: &[Seg], tail: &[Seg], source: Source, kind: Kind) {
        let mut path = base.to_vec();
        path.extend_from_slice(tail);
        self.parts.push(Part { path, source, kind });
    }

    fn skip(&mut self, base: &[Seg], reason: &'static str) {
        self.skipped.push(Skipped {
            path: pointer(base),
            reason,
        });
    }
}

fn k(s: &'static str) -> Seg {
    Seg::K(s)
}

fn push(base: &[Seg], s: Seg) -> Vec<Seg> {
    let mut p = base.to_vec();
    p.push(s);
    p
}

/// RFC 6901 pointer for a path.
pub fn pointer(path: &[Seg]) -> String {
    let mut s = String::new();
    for seg in path {
        s.push('/');
        match seg {
            Seg::K(k) => s.push_str(&k.replace('~', "~0").replace('/', "~1")),
            Seg::I(i) => s.push_str(&i.to_string()),
        }
    }
    s
}

/// Follow a path.
pub fn get_mut<'a>(mut v: &'a mut Value, path: &[Seg]) -> Option<&'a mut Value> {
    for seg in path {
        v = match seg {
            Seg::K(k) => v.get_mut(*k)?,
            Seg::I(i) => v.get_mut(*i)?,
        };
    }
    Some(v)
}

/// List every position of a request body.
pub fn request_parts(api: Api, body: &Value) -> Conversation {
    let mut c = Conversation::default();
    match api {
        Api::Chat => chat(body, &mut c),
        Api::Responses => responses(body, &mut c),
        Api::Messages => messages(body, &mut c),
        Api::Embeddings => embeddings(body, &mut c),
    }
    tools(body, api, &mut c);
    c
}

fn tools(body: &Value, api: Api, c: &mut Conversation) {
    // Tool descriptions are prompt text too: an injected tool list is an attack vector.
    let Some(tools) = body.get("tools").and_then(Value::as_array) else {
        return;
    };
    for (i, t) in tools.iter().enumerate() {
        let base = vec![k("tools"), Seg::I(i)];
        match api {
            Api::Chat => {
                if t.pointer("/function/description")
                    .is_some_and(Value::is_string)
                {
                    c.text(
                        &base,
                        &[k("function"), k("description")],
                        Source::System,
                        Kind::Text,
                    );
                }
            }
            _ => {
                if t.get("description").is_some_and(Value::is_string) {
                    c.text(&base, &[k("description")], Source::System, Kind::Text);
                }
            }
        }
    }
}

fn role_source(role: &str) -> Source {
    match role {
        "system" | "developer" => Source::System,
        "tool" | "function" => Source::Tool,
        // Assistant turns in the history are client-supplied text too.
        _ => Source::User,
    }
}

fn chat(body: &Value, c: &mut Conversation) {
    let Some(msgs) = body.get("messages").and_then(Value::as_array) else {
        return;
    };
    for (i, m) in msgs.iter().enumerate() {
        let base = vec![k("messages"), Seg::I(i)];
        let source = role_source(m.get("role").and_then(Value::as_str).unwrap_or("user"));
        match m.get("content") {
            Some(Value::String(_)) => c.text(&base, &[k("content")], source, Kind::Text),
            Some(Value::Array(parts)) => {
                for (j, p) in parts.iter().enumerate() {
                    chat_part(p, &push(&push(&base, k("content")), Seg::I(j)), source, c);
                }
            }
            _ => {}
        }
        if m.get("refusal").is_some_and(Value::is_string) {
            c.text(&base, &[k("refusal")], source, Kind::Text);
        }
        if let Some(calls) = m.get("tool_calls").and_then(Value::as_array) {
            for (j, call) in calls.iter().enumerate() {
                if call
                    .pointer("/function/arguments")
                    .is_some_and(Value::is_string)
                {
                    c.text(
                        &base,
                        &[k("tool_calls"), Seg::I(j), k("function"), k("arguments")],
                        source,
                        Kind::JsonArgs,
                    );
                }
            }
        }
        if m.pointer("/function_call/arguments")
            .is_some_and(Value::is_string)
        {
            c.text(
                &base,
                &[k("function_call"), k("arguments")],
                source,
                Kind::JsonArgs,
            );
        }
    }
}

fn chat_part(p: &Value, base: &[Seg], source: Source, c: &mut Conversation) {
    match p.get("type").and_then(Value::as_str).unwrap_or("") {
        "text" => c.text(base, &[k("text")], source, Kind::Text),
        "refusal" => c.text(base, &[k("refusal")], source, Kind::Text),
        "image_url" => c.skip(base, "image"),
        "input_audio" => c.skip(base, "audio"),
        "file" => {
            let data = p
                .pointer("/file/file_data")
                .and_then(Value::as_str)
                .unwrap_or("");
            if is_text_data_url(data) {
                c.text(
                    base,
                    &[k("file"), k("file_data")],
                    Source::Document,
                    Kind::Base64Text,
                );
            } else {
                c.skip(base, "binary_document");
            }
            if p.pointer("/file/filename").is_some_and(Value::is_string) {
                c.text(
                    base,
                    &[k("file"), k("filename")],
                    Source::Document,
                    Kind::Text,
                );
            }
        }
        _ => c.text(base, &[], source, Kind::Tree),
    }
}

/// A `data:` URL whose media type is text (so its payload is scannable).
pub fn is_text_data_url(s: &str) -> bool {
    let Some(rest) = s.strip_prefix("data:") else {
        return false;
    };
    let Some((meta, _)) = rest.split_once(',') else {
        return false;
    };
    let mime = meta.split(';').next().unwrap_or("");
    meta.ends_with(";base64") && is_text_mime(mime)
}

fn is_text_mime(mime: &str) -> bool {
    mime.starts_with("text/")
        || mime == "application/json"
        || mime == "application/xml"
        || mime == "application/x-ndjson"
}

fn responses(body: &Value, c: &mut Conversation) {
    if body.get("instructions").is_some_and(Value::is_string) {
        c.text(&[], &[k("instructions")], Source::System, Kind::Text);
    }
    match body.get("input") {
        Some(Value::String(_)) => c.text(&[], &[k("input")], Source::User, Kind::Text),
        Some(Value::Array(items)) => {
            for (i, item) in items.iter().enumerate() {
                resp_item(item, &[k("input"), Seg::I(i)], c);
            }
        }
        _ => {}
    }
}

fn resp_item(item: &Value, base: &[Seg], c: &mut Conversation) {
    let ty = item
        .get("type")
        .and_then(Value::as_str)
        .unwrap_or("message");
    match ty {
        "message" => {
            let source = role_source(item.get("role").and_then(Value::as_str).unwrap_or("user"));
            match item.get("content") {
                Some(Value::String(_)) => c.text(base, &[k("content")], source, Kind::Text),
                Some(Value::Array(parts)) => {
                    for (j, p) in parts.iter().enumerate() {
                        let pb = push(&push(base, k("content")), Seg::I(j));
                        resp_content(p, &pb, source, c);
                    }
                }
                _ => {}
            }
        }
        "function_call" | "custom_tool_call" => {
            if item.get("arguments").is_some_and(Value::is_string) {
                c.text(base, &[k("arguments")], Source::User, Kind::JsonArgs);
            }
            if item.get("input").is_some_and(Value::is_string) {
                c.text(base, &[k("input")], Source::User, Kind::Text);
            }
        }
        "function_call_output" | "custom_tool_call_output" => match item.get("output") {
            Some(Value::String(_)) => c.text(base, &[k("output")], Source::Tool, Kind::Text),
            Some(Value::Array(parts)) => {
                for (j, p) in parts.iter().enumerate() {
                    resp_content(
                        p,
                        &push(&push(base, k("output")), Seg::I(j)),
                        Source::Tool,
                        c,
                    );
                }
            }
            _ => {}
        },
        // Reasoning items may be encrypted and are replayed verbatim.
        "reasoning" => c.skip(base, "reasoning"),
        "item_reference" => {}
        _ => c.text(base, &[], Source::Tool, Kind::Tree),
    }
}

fn resp_content(p: &Value, base: &[Seg], source: Source, c: &mut Conversation) {
    match p.get("type").and_then(Value::as_str).unwrap_or("") {
        "input_text" | "output_text" | "text" => c.text(base, &[k("text")], source, Kind::Text),
        "refusal" => c.text(base, &[k("refusal")], source, Kind::Text),
        "input_image" => c.skip(base, "image"),
        "input_audio" => c.skip(base, "audio"),
        "input_file" => {
            let data = p.get("file_data").and_then(Value::as_str).unwrap_or("");
            if is_text_data_url(data) {
                c.text(base, &[k("file_data")], Source::Document, Kind::Base64Text);
            } else if p.get("file_id").is_some() && data.is_empty() {
                c.skip(base, "file_reference");
            } else {
                c.skip(base, "binary_document");
            }
            if p.get("filename").is_some_and(Value::is_string) {
                c.text(base, &[k("filename")], Source::Document, Kind::Text);
            }
        }
        _ => c.text(base, &[], source, Kind::Tree),
    }
}

fn messages(body: &Value, c: &mut Conversation) {
    match body.get("system") {
        Some(Value::String(_)) => c.text(&[], &[k("system")], Source::System, Kind::Text),
        Some(Value::Array(blocks)) => {
            for (i, b) in blocks.iter().enumerate() {
                anth_block(b, &[k("system"), Seg::I(i)], Source::System, c);
            }
        }
        _ => {}
    }
    let Some(msgs) = body.get("messages").and_then(Value::as_array) else {
        return;
    };
    for (i, m) in msgs.iter().enumerate() {
        let base = vec![k("messages"), Seg::I(i)];
        let source = role_source(m.get("role").and_then(Value::as_str).unwrap_or("user"));
        match m.get("content") {
            Some(Value::String(_)) => c.text(&base, &[k("content")], source, Kind::Text),
            Some(Value::Array(blocks)) => {
                for (j, b) in blocks.iter().enumerate() {
                    anth_block(b, &push(&push(&base, k("content")), Seg::I(j)), source, c);
                }
            }
            _ => {}
        }
    }
}

fn anth_block(b: &Value, base: &[Seg], source: Source, c: &mut Conversation) {
    match b.get("type").and_then(Value::as_str).unwrap_or("") {
        "text" => c.text(base, &[k("text")], source, Kind::Text),
        // Signed by the vendor: any change invalidates the signature.
        "thinking" | "redacted_thinking" => c.skip(base, "thinking"),
        "image" => c.skip(base, "image"),
        "tool_use" | "server_tool_use" => {
            if b.get("input").is_some() {
                c.text(base, &[k("input")], source, Kind::Tree);
            }
        }
        "tool_result" => match b.get("content") {
            Some(Value::String(_)) => c.text(base, &[k("content")], Source::Tool, Kind::Text),
            Some(Value::Array(inner)) => {
                for (j, ib) in inner.iter().enumerate() {
                    anth_block(
                        ib,
                        &push(&push(base, k("content")), Seg::I(j)),
                        Source::Tool,
                        c,
                    );
                }
            }
            _ => {}
        },
        "document" => anth_document(b, base, c),
        "search_result" => {
            if b.get("title").is_some_and(Value::is_string) {
                c.text(base, &[k("title")], Source::Document, Kind::Text);
            }
            if let Some(inner) = b.get("content").and_then(Value::as_array) {
                for (j, ib) in inner.iter().enumerate() {
                    anth_block(
                        ib,
                        &push(&push(base, k("content")), Seg::I(j)),
                        Source::Document,
                        c,
                    );
                }
            }
        }
        _ => c.text(base, &[], source, Kind::Tree),
    }
}

fn anth_document(b: &Value, base: &[Seg], c: &mut Conversation) {
    for f in ["title", "context"] {
        if b.get(f).is_some_and(Value::is_string) {
            c.text(base, &[k(f)], Source::Document, Kind::Text);
        }
    }
    let src = b.get("source");
    let sbase = push(base, k("source"));
    match src
        .and_then(|s| s.get("type"))
        .and_then(Value::as_str)
        .unwrap_or("")
    {
        "text" => c.text(&sbase, &[k("data")], Source::Document, Kind::Text),
        "content" => match src.and_then(|s| s.get("content")) {
            Some(Value::String(_)) => c.text(&sbase, &[k("content")], Source::Document, Kind::Text),
            Some(Value::Array(inner)) => {
                for (j, ib) in inner.iter().enumerate() {
                    anth_block(
                        ib,
                        &push(&push(&sbase, k("content")), Seg::I(j)),
                        Source::Document,
                        c,
                    );
                }
            }
            _ => {}
        },
        "base64" => {
            let mime = src
                .and_then(|s| s.get("media_type"))
                .and_then(Value::as_str)
                .unwrap_or("");
            if is_text_mime(mime) {
                c.text(&sbase, &[k("data")], Source::Document, Kind::Base64Text);
            } else {
                c.skip(base, "binary_document");
            }
        }
        "url" => c.skip(base, "remote_document"),
        "file" => c.skip(base, "file_reference"),
        _ => c.skip(base, "unknown_document"),
    }
}

fn embeddings(body: &Value, c: &mut Conversation) {
    match body.get("input") {
        Some(Value::String(_)) => c.text(&[], &[k("input")], Source::User, Kind::Text),
        Some(Value::Array(items)) => {
            for (i, it) in items.iter().enumerate() {
                match it {
                    Value::String(_) => {
                        c.text(&[k("input")], &[Seg::I(i)], Source::User, Kind::Text)
                    }
                    // Pre-tokenised input: token ids cannot be scanned without the tokenizer.
                    Value::Number(_) => {
                        c.skip(&[k("input")], "token_ids");
                        break;
                    }
                    Value::Array(_) => c.skip(&[k("input"), Seg::I(i)], "token_ids"),
                    _ => {}
                }
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pointers(api: Api, v: Value) -> Vec<String> {
        request_parts(api, &v)
            .parts
            .iter()
            .map(|p| pointer(&p.path))
            .collect()
    }

    #[test]
    fn chat_positions() {
        let v = json!({"messages":[
            {"role":"system","content":"s"},
            {"role":"user","content":[{"type":"text","text":"t"},{"type":"image_url","image_url":{"url":"x"}}]},
            {"role":"assistant","content":null,"tool_calls":[{"id":"1","type":"function","function":{"name":"f","arguments":"{}"}}]},
            {"role":"tool","tool_call_id":"1","content":"r"}]});
        assert_eq!(
            pointers(Api::Chat, v),
            [
                "/messages/0/content",
                "/messages/1/content/0/text",
                "/messages/2/tool_calls/0/function/arguments",
                "/messages/3/content"
            ]
        );
    }

    #[test]
    fn thinking_is_skipped() {
        let v = json!({"messages":[{"role":"assistant","content":[{"type":"thinking","thinking":"x","signature":"s"}]}]});
        let c = request_parts(Api::Messages, &v);
        assert!(c.parts.is_empty());
        assert_eq!(c.skipped[0].reason, "thinking");
    }

    #[test]
    fn pointer_escapes() {
        assert_eq!(pointer(&[k("a/b"), Seg::I(2), k("~")]), "/a~1b/2/~0");
    }
}
