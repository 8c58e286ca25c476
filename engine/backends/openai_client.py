"""HTTP to an OpenAI-compatible server: its address, which failures to retry, server-sent events."""

from __future__ import annotations

import asyncio
import json
import math
import os
import random
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import httpx

from troop.errors import EngineError, TroopError

#: Environment variables that tune the client; none of them is part of a session.
ENV_TIMEOUT = "TROOP_SERVER_TIMEOUT"
ENV_RETRIES = "TROOP_SERVER_RETRIES"
ENV_BACKOFF = "TROOP_SERVER_BACKOFF"


@dataclass(frozen=True)
class ServerOptions:
    """How patiently troop talks to a server: timeouts and retries (not stored with a session)."""

    connect_timeout: float = 10.0  # seconds to open a connection
    # Seconds without a byte from the server before a request counts as failed. Generous: a busy
    # server queues requests beyond its slots and sends nothing until one is free.
    read_timeout: float = 300.0
    retries: int = 4  # further attempts after a failed one (connection, timeout, 429, 5xx)
    backoff: float = 1.0  # seconds before the first retry; doubles on each one, with jitter
    backoff_max: float = 30.0  # longest wait between attempts, seconds (Retry-After included)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> ServerOptions:
        """Defaults, overridden by TROOP_SERVER_TIMEOUT / _RETRIES / _BACKOFF (seconds, count,
        seconds); tests shorten them so fault tests run in seconds."""
        env = os.environ if env is None else env

        def number(name: str, default: float) -> float:
            raw = env.get(name)
            if raw is None or raw == "":
                return default
            try:
                value = float(raw)
            except ValueError:
                raise TroopError(f"{name} must be a number, got {raw!r}") from None
            if not math.isfinite(value) or value < 0:
                raise TroopError(f"{name} must be a finite number >= 0, got {raw!r}")
            return value

        base = cls()
        timeout = number(ENV_TIMEOUT, base.read_timeout) or base.read_timeout
        backoff = number(ENV_BACKOFF, base.backoff)
        return cls(
            connect_timeout=min(base.connect_timeout, timeout),
            read_timeout=timeout,
            retries=int(number(ENV_RETRIES, base.retries)),
            backoff=backoff,
            backoff_max=max(backoff, base.backoff_max),
        )

    def timeout(self) -> httpx.Timeout:
        return httpx.Timeout(self.read_timeout, connect=self.connect_timeout, pool=None)

    def delay(self, attempt: int, retry_after: float | None) -> float:
        """Seconds to wait before retry number `attempt` (0-based)."""
        if retry_after is not None:
            return min(max(retry_after, 0.0), self.backoff_max)
        # Full jitter keeps many slots that failed together from retrying together.
        return min(self.backoff * 2.0**attempt, self.backoff_max) * random.uniform(0.5, 1.0)


@dataclass(frozen=True)
class ServerTarget:
    """Where samples come from: a server, the model it serves, and the API used to ask it."""

    base_url: str  # API root, e.g. http://127.0.0.1:8080/v1 (endpoints are appended to it)
    model: str  # the served model's name, sent as "model" in every request
    api: str  # "chat" (/chat/completions, messages) or "completions" (/completions, raw prompt)
    api_key: str | None = field(default=None, repr=False)  # bearer token; never stored

    @property
    def endpoint(self) -> str:
        return "/chat/completions" if self.api == "chat" else "/completions"

    def headers(self) -> dict[str, str]:
        out = {"Accept": "text/event-stream, application/json"}
        if self.api_key:
            out["Authorization"] = f"Bearer {self.api_key}"
        return out


class AttemptFailed(Exception):
    """One request attempt failed; `retryable` says whether another attempt may succeed."""

    def __init__(self, message: str, *, retryable: bool, retry_after: float | None = None):
        super().__init__(message)
        self.message = message
        self.retryable = retryable
        self.retry_after = retry_after  # seconds the server asked us to wait (Retry-After)


def normalize_base_url(url: str) -> str:
    """`http://host:port` or `.../v1`, trailing slash or not, becomes the API root."""
    parts = urlsplit(url.strip())
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise TroopError(
            f"--base-url must be an http(s) URL such as http://127.0.0.1:8080/v1, got {url!r}"
        )
    try:
        _ = parts.port  # raises on a port that is not a number
    except ValueError:
        raise TroopError(f"--base-url has a bad port: {url!r}") from None
    if parts.query or parts.fragment:
        raise TroopError(f"--base-url must not have a query or fragment: {url!r}")
    path = parts.path.rstrip("/")
    # A bare host means the usual /v1 root; any other path is taken as the API root itself
    # (proxies mount the API elsewhere, e.g. /openai/v1).
    return f"{parts.scheme}://{parts.netloc}{path or '/v1'}"


def api_key_from_env(var: str | None) -> str | None:
    """The key held by environment variable `var` (None: send no key)."""
    if var is None:
        return None
    value = os.environ.get(var, "")
    if not value:
        raise TroopError(f"--api-key-env {var}: that environment variable is not set or empty")
    return value


def error_message(body: bytes) -> str:
    """The server's own words from an error body (OpenAI, FastAPI or plain text), one line."""
    text = body.decode("utf-8", "replace").strip()
    try:
        obj = json.loads(text)
    except ValueError:
        obj = None
    if isinstance(obj, dict):
        err = obj.get("error", obj.get("detail", obj.get("message")))
        if isinstance(err, dict):
            err = err.get("message", err)
        if err is not None:
            text = err if isinstance(err, str) else json.dumps(err)
    line = " ".join(text.split())
    return line[:300] + ("…" if len(line) > 300 else "") or "(empty body)"


def status_failure(status: int, body: bytes, headers: Mapping[str, str]) -> AttemptFailed:
    """An HTTP error reply: 408, 429 and 5xx are worth another attempt, other 4xx are not."""
    retryable = status in (408, 429) or status >= 500
    retry_after = None
    raw = headers.get("retry-after")
    if raw is not None:
        try:
            retry_after = float(raw)
        except ValueError:
            retry_after = None  # an HTTP date: fall back to our own backoff
    return AttemptFailed(
        f"HTTP {status}: {error_message(body)}", retryable=retryable, retry_after=retry_after
    )


def transport_failure(exc: httpx.HTTPError, url: str, options: ServerOptions) -> AttemptFailed:
    """A connection-level failure, described for a person; all are worth another attempt."""
    if isinstance(exc, httpx.ConnectTimeout):
        why = f"no connection within {options.connect_timeout:g} s"
    elif isinstance(exc, httpx.ConnectError):
        why = f"cannot connect ({exc or 'connection refused'})"
    elif isinstance(exc, httpx.TimeoutException):
        why = f"no reply for {options.read_timeout:g} s"
    elif isinstance(exc, httpx.RemoteProtocolError | httpx.ReadError | httpx.WriteError):
        why = f"connection dropped ({exc or type(exc).__name__})"
    else:
        why = f"{type(exc).__name__}: {exc}"
    return AttemptFailed(f"{url}: {why}", retryable=True)


async def sse_data(lines: AsyncIterator[str]) -> AsyncIterator[str]:
    """The data of each server-sent event (its `data:` lines joined); comments and the other
    SSE fields (`event:`, `id:`, `retry:`) are skipped. Any other line is refused as malformed
    rather than ignored as SSE allows: an OpenAI stream has none, so one means corruption
    (e.g. a proxy's error page), and the request is better retried."""
    data: list[str] = []
    async for line in lines:
        if line == "":
            if data:
                yield "\n".join(data)
                data = []
            continue
        if line.startswith(":"):
            continue  # a comment, e.g. a keep-alive ping
        name, _, value = line.partition(":")
        if name == "data":
            data.append(value[1:] if value.startswith(" ") else value)
        elif name not in ("event", "id", "retry"):
            raise AttemptFailed(f"malformed server-sent event line: {line[:120]!r}", retryable=True)
    if data:
        yield "\n".join(data)


def parse_chunk(data: str) -> dict[str, Any]:
    """One streamed JSON chunk; a server error sent inside the stream becomes a failure."""
    try:
        chunk = json.loads(data)
    except ValueError:
        raise AttemptFailed(
            f"malformed server-sent event (not JSON): {data[:120]!r}", retryable=True
        ) from None
    if not isinstance(chunk, dict):
        raise AttemptFailed(
            f"malformed server-sent event (not an object): {data[:120]!r}", retryable=True
        )
    if "error" in chunk:
        message = error_message(json.dumps(chunk).encode())
        raise AttemptFailed(f"the server reported an error mid-stream: {message}", retryable=True)
    return chunk


async def with_retries(options: ServerOptions, attempt: Any, *, on_retry: Any = None) -> Any:
    """Await `attempt()` until it succeeds, retrying what is retryable with backoff; the last
    failure is re-raised."""
    for n in range(options.retries + 1):
        try:
            return await attempt()
        except AttemptFailed as failure:
            if not failure.retryable or n == options.retries:
                raise
            if on_retry is not None:
                on_retry(failure)
            await asyncio.sleep(options.delay(n, failure.retry_after))
    raise AssertionError("unreachable")


def client(target: ServerTarget, options: ServerOptions, connections: int) -> httpx.AsyncClient:
    """An async client for `connections` requests in flight at once."""
    limits = httpx.Limits(max_connections=connections, max_keepalive_connections=connections)
    return httpx.AsyncClient(
        base_url=target.base_url, headers=target.headers(), timeout=options.timeout(), limits=limits
    )


async def _get_models(target: ServerTarget, options: ServerOptions) -> list[dict[str, Any]] | None:
    """The served models (GET /models); None when the server has no such endpoint."""
    url = f"{target.base_url}/models"

    async def attempt() -> list[dict[str, Any]] | None:
        async with client(target, options, 1) as http:
            try:
                resp = await http.get("/models")
            except httpx.HTTPError as exc:
                raise transport_failure(exc, target.base_url, options) from exc
        if resp.status_code == 404:
            return None
        if resp.status_code != 200:
            raise status_failure(resp.status_code, resp.content, resp.headers)
        try:
            data = resp.json()["data"]
            return [m for m in data if isinstance(m, dict) and isinstance(m.get("id"), str)]
        except (ValueError, KeyError, TypeError):
            raise AttemptFailed(
                f"{url}: the reply is not an OpenAI model list: {resp.text[:120]!r}",
                retryable=False,
            ) from None

    result: list[dict[str, Any]] | None = await with_retries(options, attempt)
    return result


def check_server(target: ServerTarget, options: ServerOptions) -> dict[str, Any]:
    """Refuse an unreachable server or a model it does not serve; the model's entry from the
    server's list (empty when the server lists none)."""
    try:
        models = asyncio.run(_get_models(target, options))
    except AttemptFailed as failure:
        raise _unusable(target.base_url, failure) from None
    if models is None:
        return {}
    names = [m["id"] for m in models]
    for m in models:
        if m["id"] == target.model:
            return m
    raise TroopError(
        f"the server at {target.base_url} does not serve model {target.model!r}",
        hint=f"it serves: {', '.join(names) or 'no models'}",
    )


def served_models(base_url: str, api_key: str | None, options: ServerOptions) -> list[str]:
    """Names of the models a server lists (for choosing when --model is not given)."""
    target = ServerTarget(base_url, "", "chat", api_key)
    try:
        models = asyncio.run(_get_models(target, options))
    except AttemptFailed as failure:
        raise _unusable(base_url, failure) from None
    return [m["id"] for m in models or []]


def _unusable(base_url: str, failure: AttemptFailed) -> EngineError:
    refused = failure.message.startswith(("HTTP 401", "HTTP 403"))
    hint = (
        "pass --api-key-env VAR, VAR holding the server's key"
        if refused
        else "is it running, and is --base-url right?"
    )
    return EngineError(f"cannot use the server at {base_url}: {failure.message}", hint=hint)


def request_body(
    target: ServerTarget, prompt: str, *, stop: Sequence[str] = (), **fields: Any
) -> dict[str, Any]:
    """A request for `prompt`: one user message (chat) or the rendered text (completions)."""
    body: dict[str, Any] = {"model": target.model}
    if target.api == "chat":
        body["messages"] = [{"role": "user", "content": prompt}]
    else:
        body["prompt"] = prompt
    if stop:
        body["stop"] = list(stop)
    body.update(fields)
    return body


async def _count(
    target: ServerTarget,
    options: ServerOptions,
    prompts: Sequence[tuple[str, Sequence[str]]],
    parallel: int,
) -> list[int]:
    semaphore = asyncio.Semaphore(parallel)
    async with client(target, options, parallel) as http:

        async def one(prompt: str, stop: Sequence[str]) -> int:
            body = request_body(target, prompt, stop=stop, max_tokens=1, temperature=0.0, seed=0)

            async def attempt() -> int:
                try:
                    resp = await http.post(target.endpoint, json=body)
                except httpx.HTTPError as exc:
                    raise transport_failure(exc, target.base_url, options) from exc
                if resp.status_code != 200:
                    raise status_failure(resp.status_code, resp.content, resp.headers)
                try:
                    usage = resp.json().get("usage") or {}
                    return int(usage.get("prompt_tokens") or 0)
                except (ValueError, TypeError, AttributeError):
                    raise AttemptFailed(
                        f"malformed reply: {resp.text[:120]!r}", retryable=True
                    ) from None

            async with semaphore:
                result: int = await with_retries(options, attempt)
                return result

        return list(await asyncio.gather(*(one(p, s) for p, s in prompts)))


def count_prompts(
    target: ServerTarget,
    options: ServerOptions,
    prompts: Sequence[tuple[str, Sequence[str]]],
    *,
    parallel: int,
) -> list[int]:
    """Each prompt's token count from the server's `usage` (0 when it sends none), by a
    one-token request per prompt (there is no local tokenizer); this also proves the server
    accepts the model, the API and every prompt before a session file is written."""
    try:
        return asyncio.run(_count(target, options, prompts, parallel))
    except AttemptFailed as failure:
        raise EngineError(
            f"the server at {target.base_url} refused a prompt ({target.model}, "
            f"{target.endpoint}): {failure.message}",
            hint="check --model, --prompt-format and --max-tokens against the server",
        ) from None
