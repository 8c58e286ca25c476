"""A tiny OpenAI-compatible server for fault tests: it answers arithmetic, and misbehaves on cue."""

from __future__ import annotations

import json
import re
import socket
import sys
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

MODEL = "fault-model"

#: Faults a streamed request can be given, each consumed by one request:
#: "429" / "500" / "503" / "400": that status with an OpenAI-style error body;
#: "slow": sleep `slow_s` before answering (longer than the client's timeout);
#: "drop": two chunks, then the connection closes without ending the chunked body;
#: "malformed": a data line that is not JSON; "garbage": a line that is not SSE at all;
#: "error-event": an {"error": ...} event mid-stream; "no-finish": [DONE] but no finish reason.
FAULTS = (
    "429",
    "500",
    "503",
    "400",
    "slow",
    "drop",
    "malformed",
    "garbage",
    "error-event",
    "no-finish",
)


@dataclass
class Behaviour:
    """What the server does; tests change it between and during runs."""

    faults: deque[str] = field(default_factory=deque)  # consumed one per streamed request
    always: str | None = None  # a fault every streamed request gets (once `faults` is empty)
    ok_first: int = 0  # with `always`: this many streamed requests succeed first
    honour_n: bool = True  # return n choices when asked (False: one, as llama-cpp-python does)
    honour_stop: bool = True  # cut at stop strings (False: ignore them, as some servers do)
    stream_usage: bool = True  # send a usage chunk when stream_options.include_usage is set
    slow_s: float = 2.0  # seconds a "slow" reply waits
    token_delay_s: float = 0.0  # seconds between streamed tokens
    stream: bool = True  # False: answer streamed requests with one JSON reply (no SSE)
    api_key: str | None = None  # when set, requests without this bearer token get 401


def answer_text(prompt: str, seed: int) -> str:
    """A deterministic reply: right for most seeds, wrong for one in four."""
    m = re.search(r"What is (-?\d+) ([-+*]) (-?\d+)\?", prompt)
    if m is None:
        return f"I do not know ({seed})."
    a, op, b = int(m.group(1)), m.group(2), int(m.group(3))
    value = a + b if op == "+" else a - b if op == "-" else a * b
    if seed % 4 == 3:
        value += 1
    return f"Let me compute {a} {op} {b}.\nThe answer is {value}."


def tokens_of(text: str) -> list[str]:
    """Word-ish pieces: each is one 'token', streamed in its own chunk."""
    return re.findall(r"\s*\S+|\s+", text)


class _Quiet(ThreadingHTTPServer):
    """A client that hangs up mid-stream (cancel, client-side stop) is normal here."""

    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


class FaultServer:
    """A threaded HTTP server on 127.0.0.1 that records every request it gets."""

    def __init__(self) -> None:
        self.behaviour = Behaviour()
        self.requests: list[dict[str, Any]] = []  # every JSON body received, in order
        self.streamed = 0  # streamed completion requests received
        self.lock = threading.Lock()
        server = self

        class Handler(_Handler):
            owner = server

        self.httpd = _Quiet(("127.0.0.1", 0), Handler)
        self.port = self.httpd.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}/v1"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self) -> FaultServer:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    def next_fault(self) -> str | None:
        with self.lock:
            self.streamed += 1
            b = self.behaviour
            if b.faults:
                return b.faults.popleft()
            if b.always is not None and self.streamed > b.ok_first:
                return b.always
            return None

    def stream_bodies(self) -> list[dict[str, Any]]:
        with self.lock:
            return [r for r in self.requests if r.get("stream")]


class _Handler(BaseHTTPRequestHandler):
    owner: FaultServer
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base's name
        pass

    def _json(self, status: int, obj: Any, headers: dict[str, str] | None = None) -> None:
        data = json.dumps(obj).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(data)

    def _error(self, status: int, message: str, headers: dict[str, str] | None = None) -> None:
        self._json(status, {"error": {"message": message, "type": "test_fault"}}, headers)

    def _refused(self) -> bool:
        key = self.owner.behaviour.api_key
        if key is not None and self.headers.get("Authorization") != f"Bearer {key}":
            self._error(401, "invalid API key")
            return True
        return False

    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        if self._refused():
            return
        if self.path == "/v1/models":
            self._json(
                200,
                {"object": "list", "data": [{"id": MODEL, "object": "model", "owned_by": "tests"}]},
            )
        else:
            self._error(404, f"no route {self.path}")

    def do_POST(self) -> None:  # noqa: N802
        length = int(self.headers.get("Content-Length") or 0)
        body = json.loads(self.rfile.read(length) or b"{}")
        with self.owner.lock:
            self.owner.requests.append(body)
        if self._refused():
            return
        chat = self.path == "/v1/chat/completions"
        if self.path not in ("/v1/chat/completions", "/v1/completions"):
            return self._error(404, f"no route {self.path}")
        if body.get("model") != MODEL:
            return self._error(404, f"The model `{body.get('model')}` does not exist.")
        prompt = body["messages"][-1]["content"] if chat else body["prompt"]
        if not body.get("stream") or not self.owner.behaviour.stream:
            return self._complete(body, prompt, chat)
        fault = self.owner.next_fault()
        b = self.owner.behaviour
        if fault in ("429", "500", "503", "400"):
            headers = {"Retry-After": "0"} if fault == "429" else None
            return self._error(int(fault), f"injected {fault}", headers)
        if fault == "slow":
            time.sleep(b.slow_s)
        self._stream(body, prompt, chat, fault)

    def _complete(self, body: dict[str, Any], prompt: str, chat: bool) -> None:
        text = tokens_of(answer_text(prompt, int(body.get("seed", 0))))[: body["max_tokens"]]
        choice: dict[str, Any] = {"index": 0, "finish_reason": "length"}
        if chat:
            choice["message"] = {"role": "assistant", "content": "".join(text)}
        else:
            choice["text"] = "".join(text)
        self._json(
            200,
            {
                "object": "chat.completion" if chat else "text_completion",
                "model": MODEL,
                "choices": [choice],
                "usage": {"prompt_tokens": len(tokens_of(prompt)), "completion_tokens": len(text)},
            },
        )

    def _chunk(self, payload: bytes) -> None:
        self.wfile.write(f"{len(payload):x}\r\n".encode() + payload + b"\r\n")
        self.wfile.flush()

    def _event(self, obj: Any) -> None:
        self._chunk(
            b"data: " + (obj if isinstance(obj, bytes) else json.dumps(obj).encode()) + b"\n\n"
        )

    def _stream(self, body: dict[str, Any], prompt: str, chat: bool, fault: str | None) -> None:
        b = self.owner.behaviour
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        n = int(body.get("n", 1)) if b.honour_n else 1
        seed = int(body.get("seed", 0))
        stops = body.get("stop") or []
        pieces = []
        for j in range(n):
            text = answer_text(prompt, seed + j)
            if b.honour_stop:
                for s in stops:
                    if s in text:
                        text = text[: text.index(s)]
            pieces.append(tokens_of(text)[: body["max_tokens"]])
        self._chunk(b": ping\n\n")  # an SSE comment, to be skipped
        sent = 0
        for step in range(max(len(p) for p in pieces)):
            for j, toks in enumerate(pieces):
                if step >= len(toks):
                    continue
                tok = toks[step]
                token_id = 1000 + step
                if chat:
                    delta: dict[str, Any] = {"delta": {"content": tok}}
                    lp: dict[str, Any] = {
                        "content": [{"token": tok, "logprob": -0.5, "id": token_id}]
                    }
                else:
                    delta = {"text": tok}
                    lp = {"tokens": [tok], "token_logprobs": [-0.5]}
                choice = {"index": j, **delta, "finish_reason": None}
                asked = body.get("logprobs")
                if asked is not None and asked is not False:  # 0: the sampled token's only
                    choice["logprobs"] = lp
                self._event({"object": "chunk", "model": MODEL, "choices": [choice]})
                sent += 1
                if b.token_delay_s:
                    time.sleep(b.token_delay_s)
                if sent == 2 and fault is not None:
                    return self._misbehave(fault)
        if fault is not None:
            return self._misbehave(fault)
        for j, toks in enumerate(pieces):
            reason = "length" if len(toks) >= body["max_tokens"] else "stop"
            fin: dict[str, Any] = {"index": j, "finish_reason": reason}
            fin.update({"delta": {}} if chat else {"text": ""})
            self._event({"object": "chunk", "model": MODEL, "choices": [fin]})
        if b.stream_usage and (body.get("stream_options") or {}).get("include_usage"):
            self._event(
                {
                    "object": "chunk",
                    "model": MODEL,
                    "choices": [],
                    "usage": {
                        "prompt_tokens": len(tokens_of(prompt)),
                        "completion_tokens": sum(len(p) for p in pieces),
                    },
                }
            )
        self._event(b"[DONE]")
        self._chunk(b"")

    def _misbehave(self, fault: str) -> None:
        if fault == "drop":
            # End the TCP stream without the chunked body's terminator: a dropped connection.
            self.wfile.flush()
            self.connection.shutdown(socket.SHUT_RDWR)
            self.close_connection = True
            return
        if fault == "malformed":
            self._chunk(b'data: {"choices": [\n\n')
        elif fault == "garbage":
            self._chunk(b"this is not a server-sent event\n\n")
        elif fault == "error-event":
            self._event({"error": {"message": "injected mid-stream error"}})
        elif fault == "no-finish":
            self._event(b"[DONE]")
        self._chunk(b"")
        self.close_connection = True
