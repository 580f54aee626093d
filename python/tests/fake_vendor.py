"""A fake LLM vendor on loopback for the SDK conformance tests (`test_sdk.py`).

It speaks OpenAI Chat Completions, OpenAI Responses and Anthropic Messages,
streaming (chunked SSE, one write per event, as the vendors send them) and
not, with the event sequences the real APIs send. What it answers is set by
the request's `model`:

* `echo`: text, "You said: " and the last user message (so placeholders
  Warden put there come back, split across stream chunks);
* `tool`: the last user message is a JSON tool call `{"name", "arguments"}`
  (or an array of them) and the answer is that call (so a placeholder in the
  arguments comes back inside the call's JSON);
* a Responses request with `previous_response_id` is answered as if it were
  the request it continues (the vendor keeps history);
* `thinking`: as `echo`, after a signed thinking block (Anthropic);
* `leak`: text made of every placeholder the vendor has seen so far, from
  any request (a vendor that mixes conversations up, or a model talked into
  repeating what it saw elsewhere);
* `broken`: as `echo`, but a stream stops halfway: the connection closes
  without the end of the chunked body.

Every request body is kept in `seen`, so a test can check what reached the
vendor.
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

JSON = dict[str, Any]


def _text_of(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(p.get("text", "") for p in content if isinstance(p, dict))
    return ""


def last_user_text(path: str, body: JSON) -> str:
    """The text of the last user turn of a request body."""
    if path.endswith("/responses"):
        items = body.get("input")
        if isinstance(items, str):
            return items
        turns = items if isinstance(items, list) else []
    else:
        turns = body.get("messages", [])
    for turn in reversed(turns):
        if isinstance(turn, dict) and turn.get("role") == "user":
            return _text_of(turn.get("content"))
    return ""


def pieces(s: str, n: int) -> list[str]:
    """`s` cut every `n` characters: placeholders end up split across events."""
    return [s[i : i + n] for i in range(0, len(s), n)]


def _sse(data: JSON) -> bytes:
    return f"data: {json.dumps(data)}\n\n".encode()


def _event(name: str, data: JSON) -> bytes:
    return f"event: {name}\ndata: {json.dumps(data)}\n\n".encode()


def _tools(model: str, text: str) -> list[tuple[str, str]]:
    """The calls (name, JSON arguments) a `tool` model answers `text` with:
    one for a JSON object, one per element for a JSON array."""
    if model != "tool":
        return []
    spec = json.loads(text)
    return [(c["name"], json.dumps(c["arguments"])) for c in (spec if isinstance(spec, list) else [spec])]


# A signed thinking block that mentions a placeholder: Warden must pass it on
# byte for byte (the signature covers it), never restore inside it.
THINKING = "The user wrote <EMAIL_deadbeef>; I should answer politely."
SIGNATURE = "EqQBCkgIARABGAIiQL7signature=="


def chat(model: str, text: str, stream: bool, usage: bool = False, n: int = 1) -> JSON | list[bytes]:
    """A Chat Completions answer: the JSON body, or the SSE events (with a
    last chunk of usage and no choices when `usage`, as `stream_options:
    {"include_usage": true}` asks). With `n` choices, each gets the same
    answer; in a stream their chunks take turns."""
    tools = _tools(model, text)
    reply = f"You said: {text}"
    finish = "tool_calls" if tools else "stop"
    if not stream:
        message: JSON = {"role": "assistant", "content": None if tools else reply, "refusal": None}
        if tools:
            message["tool_calls"] = [
                {"id": f"call_{i}", "type": "function", "function": {"name": name, "arguments": a}}
                for i, (name, a) in enumerate(tools)
            ]
        return {
            "id": "chatcmpl-1",
            "object": "chat.completion",
            "created": 1,
            "model": model,
            "choices": [
                {"index": c, "message": message, "logprobs": None, "finish_reason": finish} for c in range(n)
            ],
            "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
        }

    def chunk(choices: list[JSON], **extra: Any) -> bytes:
        base = {"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 1, "model": model}
        return _sse({**base, "choices": choices, **extra})

    def delta(d: JSON, finish: str | None = None) -> list[bytes]:
        return [chunk([{"index": c, "delta": d, "logprobs": None, "finish_reason": finish}]) for c in range(n)]

    events = delta({"role": "assistant", "content": None if tools else ""})
    for i, (name, a) in enumerate(tools):
        first = {"index": i, "id": f"call_{i}", "type": "function", "function": {"name": name, "arguments": ""}}
        events += delta({"tool_calls": [first]})
        for p in pieces(a, 5):
            events += delta({"tool_calls": [{"index": i, "function": {"arguments": p}}]})
    if not tools:
        for p in pieces(reply, 4):
            events += delta({"content": p})
    events += delta({}, finish)
    if usage:
        events.append(chunk([], usage={"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2}))
    events.append(b"data: [DONE]\n\n")
    return events


def messages(model: str, text: str, stream: bool) -> JSON | list[bytes]:
    """An Anthropic Messages answer."""
    tools = _tools(model, text)
    reply = f"You said: {text}"
    stop = "tool_use" if tools else "end_turn"
    blocks: list[JSON] = [
        {"type": "tool_use", "id": f"toolu_{i}", "name": n, "input": json.loads(a)} for i, (n, a) in enumerate(tools)
    ] or [{"type": "text", "text": reply}]
    if model == "thinking":
        blocks.insert(0, {"type": "thinking", "thinking": THINKING, "signature": SIGNATURE})
    message: JSON = {
        "id": "msg_1",
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": blocks,
        "stop_reason": stop,
        "stop_sequence": None,
        "usage": {"input_tokens": 1, "output_tokens": 1},
    }
    if not stream:
        return message
    start = {**message, "content": [], "stop_reason": None}
    events = [_event("message_start", {"type": "message_start", "message": start}), _event("ping", {"type": "ping"})]
    for i, block in enumerate(blocks):
        if block["type"] == "thinking":
            empty: JSON = {"type": "thinking", "thinking": "", "signature": ""}
            deltas = [{"type": "thinking_delta", "thinking": p} for p in pieces(THINKING, 6)]
            deltas.append({"type": "signature_delta", "signature": SIGNATURE})
        elif block["type"] == "tool_use":
            empty = {**block, "input": {}}
            # Anthropic opens a tool's input with an empty piece.
            parts = ["", *pieces(json.dumps(block["input"]), 5)]
            deltas = [{"type": "input_json_delta", "partial_json": p} for p in parts]
        else:
            empty = {"type": "text", "text": ""}
            deltas = [{"type": "text_delta", "text": p} for p in pieces(reply, 4)]
        started = {"type": "content_block_start", "index": i, "content_block": empty}
        events.append(_event("content_block_start", started))
        events += [
            _event("content_block_delta", {"type": "content_block_delta", "index": i, "delta": d}) for d in deltas
        ]
        events.append(_event("content_block_stop", {"type": "content_block_stop", "index": i}))
    end: JSON = {"stop_reason": stop, "stop_sequence": None}
    events.append(_event("message_delta", {"type": "message_delta", "delta": end, "usage": {"output_tokens": 5}}))
    events.append(_event("message_stop", {"type": "message_stop"}))
    return events


def responses(model: str, text: str, stream: bool, n: int) -> JSON | list[bytes]:
    """An OpenAI Responses answer (`n` makes the response id unique)."""
    tools = _tools(model, text)
    reply = f"You said: {text}"
    items: list[JSON] = [
        {"type": "function_call", "id": f"fc_{i}", "call_id": f"call_{i}", "name": name, "arguments": a}
        | {"status": "completed"}
        for i, (name, a) in enumerate(tools)
    ] or [
        {
            "type": "message",
            "id": "msg_0",
            "status": "completed",
            "role": "assistant",
            "content": [{"type": "output_text", "text": reply, "annotations": []}],
        }
    ]
    resp: JSON = {
        "id": f"resp_{n}",
        "object": "response",
        "created_at": 1,
        "status": "completed",
        "model": model,
        "output": items,
        "parallel_tool_calls": True,
        "tool_choice": "auto",
        "tools": [],
    }
    if not stream:
        return resp
    seq = iter(range(1_000_000))

    def ev(kind: str, data: JSON) -> bytes:
        return _event(kind, {"type": kind, "sequence_number": next(seq), **data})

    created = {**resp, "status": "in_progress", "output": []}
    events = [ev("response.created", {"response": created}), ev("response.in_progress", {"response": created})]
    for i, item in enumerate(items):
        if item["type"] == "function_call":
            at: JSON = {"item_id": item["id"], "output_index": i}
            pending = {**item, "arguments": "", "status": "in_progress"}
            events.append(ev("response.output_item.added", {"output_index": i, "item": pending}))
            args = pieces(item["arguments"], 5)
            events += [ev("response.function_call_arguments.delta", {**at, "delta": p}) for p in args]
            events.append(ev("response.function_call_arguments.done", {**at, "arguments": item["arguments"]}))
        else:
            part: JSON = {"type": "output_text", "text": "", "annotations": []}
            at = {"item_id": item["id"], "output_index": i, "content_index": 0}
            pending = {**item, "status": "in_progress", "content": []}
            events.append(ev("response.output_item.added", {"output_index": i, "item": pending}))
            events.append(ev("response.content_part.added", {**at, "part": part}))
            events += [ev("response.output_text.delta", {**at, "delta": p, "logprobs": []}) for p in pieces(reply, 4)]
            events.append(ev("response.output_text.done", {**at, "text": reply, "logprobs": []}))
            events.append(ev("response.content_part.done", {**at, "part": {**part, "text": reply}}))
        events.append(ev("response.output_item.done", {"output_index": i, "item": item}))
    events.append(ev("response.completed", {"response": resp}))
    return events


class FakeVendor:
    """The vendor's HTTP server, serving on a free loopback port until `stop`."""

    def __init__(self) -> None:
        self.seen: list[JSON] = []
        # Every placeholder seen in a request, in order (for `leak`).
        self.placeholders: list[str] = []
        # Responses API: the user text of each response, by response id.
        self.inputs: dict[str, str] = {}
        self._lock = threading.Lock()
        vendor = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                if not self.path.endswith("/models"):
                    self.send_error(404)
                    return
                raw = json.dumps(
                    {"object": "list", "data": [{"id": "echo", "object": "model", "created": 1, "owned_by": "fake"}]}
                ).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(raw)))
                self.end_headers()
                self.wfile.write(raw)

            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                with vendor._lock:
                    vendor.seen.append(body)
                    n = len(vendor.seen)
                model, stream = body.get("model", "echo"), bool(body.get("stream"))
                broken = model == "broken"
                model = "echo" if broken else model
                text = last_user_text(self.path, body)
                with vendor._lock:
                    for p in re.findall(r"<[A-Z_]+_[0-9a-f]{8,}>", json.dumps(body)):
                        if p not in vendor.placeholders:
                            vendor.placeholders.append(p)
                    if model == "leak":
                        # A vendor (or a model talked into it) that answers with
                        # placeholders of this and earlier requests, other callers' too.
                        model, text = "echo", " ".join(vendor.placeholders)
                if self.path.endswith("/embeddings"):
                    inputs = body["input"] if isinstance(body["input"], list) else [body["input"]]
                    data = [{"object": "embedding", "index": i, "embedding": [0.5, 0.25]} for i in range(len(inputs))]
                    answer: JSON | list[bytes] = {"object": "list", "data": data, "model": model}
                elif self.path.endswith("/chat/completions"):
                    usage = bool((body.get("stream_options") or {}).get("include_usage"))
                    answer = chat(model, text, stream, usage, int(body.get("n") or 1))
                elif self.path.endswith("/messages"):
                    answer = messages(model, text, stream)
                elif self.path.endswith("/responses"):
                    # History at the vendor: a follow-up is answered from the
                    # turn it continues, which this request does not carry.
                    earlier = vendor.inputs.get(str(body.get("previous_response_id")))
                    answer = responses(model, text if earlier is None else earlier, stream, n)
                    vendor.inputs[f"resp_{n}"] = text
                else:
                    self.send_error(404)
                    return
                self.send_response(200)
                if isinstance(answer, dict):
                    raw = json.dumps(answer).encode()
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(raw)))
                    self.end_headers()
                    self.wfile.write(raw)
                    return
                self.send_header("Content-Type", "text/event-stream")
                self.send_header("Transfer-Encoding", "chunked")
                self.end_headers()
                for e in answer[: len(answer) // 2] if broken else answer:
                    self.wfile.write(b"%x\r\n%s\r\n" % (len(e), e))
                    self.wfile.flush()
                if broken:
                    self.close_connection = True
                    return
                self.wfile.write(b"0\r\n\r\n")

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def raw_seen(self) -> Iterator[str]:
        """Every request body that reached the vendor, as JSON text."""
        with self._lock:
            yield from (json.dumps(b) for b in self.seen)

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
