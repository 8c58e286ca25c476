"""Samples from an OpenAI-compatible server (llama-server, vLLM, SGLang): a drop-in for
BatchedSampler that streams up to `parallel` samples at once over async HTTP."""

# What a server does not say is stored as follows. Token ids: the server's when its logprobs
# carry them (llama-server's `id`, vLLM's `token_id:N`), else UNKNOWN_TOKEN (-1) once per
# completion token, so the stored count stays right. Log-probability: the sum of the server's
# per-token logprobs when asked for and given, else 0.0 (as a local run with --no-logprobs).
# Completion tokens: the server's `usage` (single-choice requests), else the logprob entries,
# else the streamed chunks (one token each on llama.cpp servers). A sample whose request still
# fails after the retries is never stored: the run ends "failed", naming how many, and resuming
# draws exactly those samples again with the same seeds.

from __future__ import annotations

import asyncio
import math
import time
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import httpx

from troop.engine.backends.openai_client import (
    AttemptFailed,
    ServerOptions,
    ServerTarget,
    client,
    parse_chunk,
    request_body,
    sse_data,
    status_failure,
    transport_failure,
    with_retries,
)
from troop.engine.backends.sample_loop import Drawing, SampleSource, find_stop, sample_record
from troop.engine.events import SampleRecord
from troop.engine.work import SamplingParams, WorkItem, WorkSource
from troop.errors import EngineError

#: Stored in place of a completion token id the server did not report.
UNKNOWN_TOKEN = -1


@dataclass(frozen=True)
class ServerPrompt:
    """A problem's prompt as the server receives it."""

    text: str  # the user message (chat API) or the rendered prompt text (completions API)
    n_tokens: int  # its length as the server counted it when the session was made; 0: unknown


class _Draw:
    """One sample being streamed: one choice of a request."""

    __slots__ = (
        "item",
        "slot",
        "stops",
        "text",
        "chunks",
        "logprobs",
        "ids",
        "reason",
        "server_stop",
        "client_stop",
        "started",
    )

    def __init__(self, item: WorkItem, slot: int) -> None:
        self.item = item
        self.slot = slot  # the slot (0-based, < parallel) it occupies
        self.stops = item.prompt.stop
        self.reset()

    def reset(self) -> None:
        """Forget a failed attempt: the retry streams the sample from its start."""
        self.text = ""
        self.chunks = 0  # content chunks received
        self.logprobs: list[float] = []  # one per completion token, when the server sends them
        self.ids: list[int | None] = []  # token ids from the logprob entries, None if not said
        self.reason: str | None = None  # the server's finish_reason
        self.server_stop: Any = None  # the server's stop_reason (vLLM: the stop string matched)
        self.client_stop: str | None = None  # a stop string found here (server ignored `stop`)
        self.started = time.perf_counter()

    @property
    def finished(self) -> bool:
        return self.reason is not None or self.client_stop is not None

    def n_tokens(self) -> int:
        return len(self.logprobs) if self.logprobs else self.chunks

    def feed(self, choice: Mapping[str, Any], chat: bool) -> str:
        """Take one streamed choice delta; the new text (empty when none or already ended)."""
        if self.finished:
            return ""
        if chat:
            delta = choice.get("delta") or {}
            piece = delta.get("content") if isinstance(delta, dict) else None
        else:
            piece = choice.get("text")
        if piece is not None and not isinstance(piece, str):
            raise AttemptFailed(
                f"malformed chunk: content is {type(piece).__name__}", retryable=True
            )
        self._logprobs(choice.get("logprobs"))
        if piece:
            self.chunks += 1
            before = len(self.text)
            self.text += piece
            hit = find_stop(self.text, before, self.stops)
            if hit is not None:
                self.text = self.text[: hit[0]]
                self.client_stop = hit[1]
                return ""
        reason = choice.get("finish_reason")
        if reason is not None:
            if reason in ("abort", "error"):  # vLLM/SGLang: the server gave up on it
                raise AttemptFailed(
                    f"the server ended a sample with finish_reason {reason!r}", retryable=True
                )
            self.reason = str(reason)
            self.server_stop = choice.get("stop_reason")
        return piece or ""

    def _logprobs(self, lp: Any) -> None:
        if not isinstance(lp, dict):
            return
        content = lp.get("content")
        if isinstance(content, list):  # chat format: one entry per token
            for entry in content:
                if isinstance(entry, dict):
                    self._add(entry.get("logprob"), _token_id(entry.get("id"), entry.get("token")))
        elif isinstance(lp.get("token_logprobs"), list):  # legacy completions format
            tokens = lp.get("tokens") or []
            for i, value in enumerate(lp["token_logprobs"]):
                token = tokens[i] if i < len(tokens) else None
                self._add(value, _token_id(None, token))

    def _add(self, value: Any, token_id: int | None) -> None:
        number = float(value) if isinstance(value, int | float) else 0.0
        self.logprobs.append(number if math.isfinite(number) else 0.0)
        self.ids.append(token_id)

    def outcome(self) -> tuple[str, str | None]:
        """(finish reason, stop string) in troop's words: eos, stop, length."""
        if self.client_stop is not None:
            return "stop", self.client_stop
        if self.reason == "stop":
            if isinstance(self.server_stop, str) and self.server_stop in self.stops:
                return "stop", self.server_stop
            # With no stop strings sent, only the end-of-generation token stops a sample; with
            # some, OpenAI-style servers do not say which of the two ended it.
            return ("eos", None) if not self.stops else ("stop", None)
        return str(self.reason), None


def _token_id(value: Any, token: Any) -> int | None:
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(token, str) and token.startswith("token_id:"):
        try:
            return int(token[len("token_id:") :])
        except ValueError:
            return None
    return None


class _State:
    """What the requests of one run share (all touched on the event loop's thread only)."""

    def __init__(self, parallel: int, n: int) -> None:
        self.free = list(range(parallel))  # slot numbers not in use, lowest first
        self.pending: deque[WorkItem] = deque()  # taken from the scheduler, not yet requested
        self.prompted: set[str] = set()  # problems whose prompt this run has reported
        self.n = n  # samples per request; drops to 1 when the server ignores `n`
        self.failure: AttemptFailed | None = None  # the first request that failed for good
        self.failed = 0  # samples lost to failed requests (not stored: resume redraws them)
        self.failed_item: WorkItem | None = None  # the first of them, for the message


class ServerSampler(SampleSource):
    """Draws samples from an OpenAI-compatible server with up to `parallel` in flight; the same
    `run(scheduler, store, observer, control, stats)` as BatchedSampler, the same events."""

    def __init__(
        self,
        target: ServerTarget,
        params: SamplingParams,
        prompts: Mapping[str, ServerPrompt],
        *,
        parallel: int,
        n_per_request: int = 1,
        logprobs: bool = True,
        options: ServerOptions | None = None,
        extra_body: Mapping[str, Any] | None = None,
    ) -> None:
        self.target = target
        self.params = params
        self.prompts = prompts  # shared, not copied: problems added to a live run appear here
        self.parallel = parallel  # samples in flight at most (a request of n counts n)
        self.n_per_request = n_per_request  # the server's `n`: samples per request, at most
        self.logprobs = logprobs  # ask the server for per-token logprobs
        self.options = options or ServerOptions()
        self.extra_body = dict(extra_body or {})  # extra request fields (e.g. logit_bias)

    def _draw(self, drawing: Drawing) -> None:
        """Sample until the scheduler is empty, the run is cancelled or a request fails for
        good (then EngineError, after the samples in flight have finished)."""
        state = _State(self.parallel, max(1, self.n_per_request))
        asyncio.run(self._main(drawing, state))
        if state.failure is not None:
            raise EngineError(
                self._failure_message(state, drawing.stats.samples),
                hint="stored samples are kept; run the same command again to draw the rest",
            )

    def _failure_message(self, state: _State, stored: int) -> str:
        failure, item = state.failure, state.failed_item
        assert failure is not None and item is not None
        where = f"{item.prompt.problem_id} sample {item.sample_index}"
        tries = f"after {self.options.retries + 1} attempts" if failure.retryable else "not retried"
        return (
            f"{state.failed} sample(s) could not be drawn from {self.target.base_url} "
            f"({self.target.model}); first {where}, {tries}: {failure.message}; "
            f"{stored} drawn and stored by this run"
        )

    async def _main(self, drawing: Drawing, state: _State) -> None:
        scheduler, control = drawing.scheduler, drawing.control
        async with client(self.target, self.options, self.parallel) as http:
            tasks: set[asyncio.Task[None]] = set()
            exhausted = False
            exhausted_at = 0  # the budget when the scheduler ran dry
            try:
                while not control.cancelled:
                    # As in BatchedSampler: only a raised budget (or work handed back by a
                    # request) can refill a dry scheduler.
                    if exhausted and (control.budget != exhausted_at or state.pending):
                        exhausted = False
                    while (
                        state.free
                        and not exhausted
                        and state.failure is None
                        and not control.paused
                    ):
                        group = self._take(scheduler, state)
                        if not group:
                            exhausted = True
                            exhausted_at = scheduler.budget_seen
                            break
                        slots = [state.free.pop(0) for _ in group]
                        tasks.add(
                            asyncio.create_task(self._request(http, group, slots, drawing, state))
                        )
                    if not tasks:
                        if exhausted or state.failure is not None:
                            break
                        await asyncio.sleep(0.05)  # paused with nothing in flight
                        continue
                    # A short wait, so cancellation and pauses are seen within 50 ms.
                    done, _ = await asyncio.wait(
                        tasks, timeout=0.05, return_when=asyncio.FIRST_COMPLETED
                    )
                    for task in done:
                        tasks.discard(task)
                        task.result()  # a bug in here surfaces, not a silent stall
            finally:
                for task in tasks:
                    task.cancel()
                await asyncio.gather(*tasks, return_exceptions=True)

    def _take(self, scheduler: WorkSource, state: _State) -> list[WorkItem]:
        """The next request's samples: one, or up to `n` of one problem and temperature."""
        first = state.pending.popleft() if state.pending else scheduler.next_item()
        if first is None:
            return []
        group = [first]
        room = min(state.n, len(state.free))
        while len(group) < room:
            item = state.pending.popleft() if state.pending else scheduler.next_item()
            if item is None:
                break
            if (item.prompt.problem_id, item.temperature) != (
                first.prompt.problem_id,
                first.temperature,
            ):
                state.pending.appendleft(item)
                break
            group.append(item)
        return group

    def _body(self, group: list[WorkItem]) -> dict[str, Any]:
        first = group[0]
        p = self.params
        fields: dict[str, Any] = {
            "max_tokens": p.max_tokens,
            "temperature": first.temperature,
            "top_p": p.top_p,
            # Not in OpenAI's own API, but llama-server, vLLM and SGLang all take them.
            "top_k": p.top_k,
            "min_p": p.min_p,
            # A request's seed is its first sample's: a single-sample request draws exactly
            # what the local engine's per-sample seed promises, on a deterministic server.
            "seed": first.seed,
            "stream": True,
            "stream_options": {"include_usage": True},
        }
        if len(group) > 1:
            fields["n"] = len(group)
        if self.logprobs:
            # The sampled token's logprob only (no alternatives); llama-cpp-python's server
            # sends chat logprobs only when top_logprobs is given.
            if self.target.api == "chat":
                fields.update(logprobs=True, top_logprobs=0)
            else:
                fields["logprobs"] = 0
        if p.ignore_eos:
            fields["ignore_eos"] = True  # llama-server and vLLM extension
        fields.update(self.extra_body)
        text = self.prompts[first.prompt.problem_id].text
        body: dict[str, Any] = request_body(self.target, text, stop=first.prompt.stop, **fields)
        return body

    async def _request(
        self,
        http: httpx.AsyncClient,
        group: list[WorkItem],
        slots: list[int],
        drawing: Drawing,
        state: _State,
    ) -> None:
        draws = [_Draw(item, slot) for item, slot in zip(group, slots, strict=True)]
        body = self._body(group)
        seed = group[0].seed  # the request's: every sample of a request shares it
        usage: dict[str, Any] = {}

        async def attempt() -> None:
            usage.clear()
            for d in draws:
                d.reset()
                drawing.started(d.slot, d.item, seed)
            drawing.stats.steps += 1  # requests sent, retries included
            await self._stream(http, body, draws, usage, drawing, state)

        try:
            try:
                await with_retries(self.options, attempt)
            except AttemptFailed as failure:
                if state.failure is None:
                    state.failure, state.failed_item = failure, group[0]
                state.failed += len(group)
                return
            unanswered = [d for d in draws if not d.finished]
            if unanswered:
                # Only choices the server never sent are missing (the stream check refuses
                # half-sent ones): it ignores `n`, so they go back as single requests.
                state.n = 1
                state.pending.extendleft(reversed([d.item for d in unanswered]))
            for d in draws:
                if d.finished:
                    drawing.finished(
                        d.slot, self._record(d, seed, usage if len(draws) == 1 else {})
                    )
        finally:
            state.free.extend(slots)
            state.free.sort()

    async def _stream(
        self,
        http: httpx.AsyncClient,
        body: dict[str, Any],
        draws: list[_Draw],
        usage: dict[str, Any],
        drawing: Drawing,
        state: _State,
    ) -> None:
        t0 = time.perf_counter()
        control = drawing.control
        try:
            async with http.stream("POST", self.target.endpoint, json=body) as resp:
                if resp.status_code != 200:
                    raise status_failure(resp.status_code, await resp.aread(), resp.headers)
                if "json" in resp.headers.get("content-type", ""):
                    # A server that does not stream: its whole reply is one chunk.
                    chunk = parse_chunk((await resp.aread()).decode("utf-8", "replace"))
                    for choice in chunk.get("choices") or []:
                        if isinstance(choice, dict) and "message" in choice:
                            choice["delta"] = choice["message"]
                    self._chunk(chunk, draws, usage, drawing, state, t0)
                else:
                    async for data in sse_data(resp.aiter_lines()):
                        if data.strip() == "[DONE]":
                            break
                        self._chunk(parse_chunk(data), draws, usage, drawing, state, t0)
                        if all(d.client_stop is not None for d in draws):
                            break  # every sample hit a stop string the server did not apply
                        while control.paused and not control.cancelled:
                            await asyncio.sleep(0.1)  # hold the stream; the server waits
        except httpx.HTTPError as exc:
            raise transport_failure(exc, self.target.base_url, self.options) from exc
        started = [d for d in draws if d.finished or d.chunks or d.logprobs]
        if any(not d.finished for d in started) or not started:
            raise AttemptFailed(
                "the stream ended before the sample finished (no finish reason)", retryable=True
            )

    def _chunk(
        self,
        chunk: dict[str, Any],
        draws: list[_Draw],
        usage: dict[str, Any],
        drawing: Drawing,
        state: _State,
        t0: float,
    ) -> None:
        """Hand one streamed chunk's choices to their samples and report the new text."""
        self._prompt_seen(draws[0].item, t0, drawing, state)
        if isinstance(chunk.get("usage"), dict):
            usage.update(chunk["usage"])
        choices = chunk.get("choices") or []
        if not isinstance(choices, list):
            raise AttemptFailed("malformed chunk: choices is not a list", retryable=True)
        chat = self.target.api == "chat"
        for choice in choices:
            index = choice.get("index", 0) if isinstance(choice, dict) else -1
            if not isinstance(index, int) or not 0 <= index < len(draws):
                raise AttemptFailed(f"malformed chunk: choice index {index!r}", retryable=True)
            d = draws[index]
            delta = d.feed(choice, chat)
            if delta:
                drawing.decoded(d.slot, d.item, delta, d.n_tokens())

    def _prompt_seen(self, item: WorkItem, t0: float, drawing: Drawing, state: _State) -> None:
        """The first reply for a problem in this run: its prompt has been evaluated."""
        pid = item.prompt.problem_id
        if pid in state.prompted:
            return
        state.prompted.add(pid)
        drawing.prompt_evaluated(pid, self.prompts[pid].n_tokens, t0)

    def _record(self, d: _Draw, seed: int, usage: Mapping[str, Any]) -> SampleRecord:
        item = d.item
        known = [i for i in d.ids if i is not None]
        if known and len(known) == len(d.ids):
            tokens = tuple(known)  # the server named every token (the end token excluded)
        else:
            count = d.n_tokens()
            reported = usage.get("completion_tokens")
            if isinstance(reported, int) and d.client_stop is None:
                count = reported
            tokens = (UNKNOWN_TOKEN,) * count
        prompt_tokens = usage.get("prompt_tokens")
        if not isinstance(prompt_tokens, int):
            prompt_tokens = self.prompts[item.prompt.problem_id].n_tokens
        return sample_record(
            item,
            self.params,
            seed=seed,
            text=d.text,
            tokens=tokens,
            prompt_tokens=prompt_tokens,
            finish=d.outcome(),
            started=d.started,
            logprob=math.fsum(d.logprobs),
        )
