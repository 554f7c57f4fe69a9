"""A fake OpenAI-compatible chat-completions server on 127.0.0.1, scriptable per request.

Why: backend, runtime, judge and CLI tests must exercise real HTTP (sockets, headers, timeouts,
resets, cut-short bodies) without a model and without the network. This server is a small
HTTP/1.1 implementation on asyncio that runs in its own thread (so sync code such as the CLI can
call it too), or as a separate process for the benchmark:

    python tests/fake_openai.py --port 0 --latency 0.2 --concurrency-limit 64

Scripting, in order of precedence for each chat request:
1. server-wide limits: `concurrency_limit` (more requests in flight -> 429 + Retry-After) and
   `every_nth_429` (every n-th request -> 429 + Retry-After);
2. `script(Reply(...), ...)`: replies consumed one per request, in order;
3. `responder(request) -> Reply | None`;
4. `default` (a `Reply`; text "ok").

A `Reply` can set the status, headers (`Retry-After`, `retry-after-ms`), a delay, the text,
`finish_reason`, `logprobs`, `usage`, empty or custom `choices`, a raw body (e.g. truncated JSON),
a connection reset (TCP RST) or a body cut short. The server records every request (parsed
body, headers, arrival and finish times on `time.monotonic()`), counts requests in flight and
open TCP connections, and the requests that arrived inside a Retry-After window it announced.

Text completions (`POST .../completions`) are answered like chat requests, in the text API's
shape (`choices[0].text`, logprobs as `tokens` / `token_logprobs` / `top_logprobs`); with
`tokenizer` set (text -> its pieces), `POST /tokenize` answers as llama.cpp's server does.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import http
import json
import socket
import struct
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

CHAT_SUFFIX = "/chat/completions"
TEXT_SUFFIX = "/completions"


@dataclass
class Reply:
    """How the server answers one chat request."""

    text: str = "ok"
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    delay_s: float = 0.0
    finish_reason: str | None = "stop"
    body: Any = None  # replaces the whole body: dict/list -> JSON, str/bytes -> sent as is
    choices: list[Any] | None = None  # replaces `choices` (e.g. [] for "empty choices")
    logprobs: list[tuple[str, float, dict[str, float]]] | None = None  # (token, logprob, top)
    usage: dict[str, int] | None = None
    error: str | None = None  # the error message of a 4xx / 5xx body
    reset: bool = False  # abort the connection with a TCP RST instead of answering
    cut_after: int | None = None  # announce the full body, send this many bytes, then close


@dataclass
class RecordedRequest:
    index: int
    method: str
    path: str
    headers: dict[str, str]
    body: Any
    arrived: float
    connection: int
    finished: float | None = None
    status: int | None = None
    arrived_wall: float = field(default_factory=time.time)

    @property
    def messages(self) -> list[dict[str, Any]]:
        return list((self.body or {}).get("messages") or [])

    @property
    def prompt(self) -> str:
        """All message contents joined (a text completion's prompt): for responders that answer by prompt."""
        if isinstance(self.body, dict) and isinstance(self.body.get("prompt"), str):
            return self.body["prompt"]
        return "\n".join(str(message.get("content", "")) for message in self.messages)


def retry_after_of(headers: dict[str, str]) -> float | None:
    lowered = {key.lower(): value for key, value in headers.items()}
    try:
        if "retry-after-ms" in lowered:
            return float(lowered["retry-after-ms"]) / 1000.0
        if "retry-after" in lowered:
            return float(lowered["retry-after"])
    except ValueError:
        return None  # an HTTP-date: no window bookkeeping for those
    return None


class FakeOpenAIServer:
    """Start with `start()` (or as a context manager); `url` is the base URL ending in /v1."""

    def __init__(self, *, latency_s: float = 0.0, concurrency_limit: int | None = None,
                 limit_retry_after_s: float = 1.0, every_nth_429: int | None = None,
                 nth_retry_after_s: float = 0.05, window_grace_s: float = 0.0,
                 model: str = "fake-judge", record_bodies: bool = True,
                 watch_disconnects: bool = True) -> None:
        self.latency_s = latency_s
        self.concurrency_limit = concurrency_limit
        self.limit_retry_after_s = limit_retry_after_s
        self.every_nth_429 = every_nth_429
        self.nth_retry_after_s = nth_retry_after_s
        self.window_grace_s = window_grace_s
        self.model = model
        self.record_bodies = record_bodies
        # notice a client hanging up during a delay (timeout tests); off in the benchmark (cheaper)
        self.watch_disconnects = watch_disconnects
        self.default = Reply()
        self.tokenizer: Callable[[str], list[str]] | None = None
        self.responder: Callable[[RecordedRequest], Reply | None] | None = None
        self._queue: list[Reply] = []
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._server: asyncio.AbstractServer | None = None
        self._ready = threading.Event()
        self.host = "127.0.0.1"
        self.port = 0
        self.open_connections = 0
        self.reset_counters()

    # -- control ---------------------------------------------------------------------------

    def reset_counters(self) -> None:
        with self._lock:
            self.requests: list[RecordedRequest] = []
            self.request_count = 0
            self.current_concurrent = 0
            self.max_concurrent = 0
            self.total_connections = 0
            self.status_counts: dict[int, int] = {}
            self.windows: list[tuple[float, float]] = []
            self.arrivals_in_window = 0
            self.client_disconnects = 0
            self._queue = []

    def script(self, *replies: Reply) -> None:
        """Queue replies for the next chat requests, in order."""
        with self._lock:
            self._queue.extend(replies)

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}/v1"

    @property
    def chat_requests(self) -> list[RecordedRequest]:
        return [request for request in self.requests if request.path.endswith(CHAT_SUFFIX)]

    @property
    def text_requests(self) -> list[RecordedRequest]:
        """The text completions (`.../completions`, not chat)."""
        return [request for request in self.requests
                if request.path.endswith(TEXT_SUFFIX) and not request.path.endswith(CHAT_SUFFIX)]

    def stats(self) -> dict[str, Any]:
        with self._lock:
            return {"requests": self.request_count, "max_concurrent": self.max_concurrent,
                    "current_concurrent": self.current_concurrent,
                    "open_connections": self.open_connections,
                    "total_connections": self.total_connections,
                    "status_counts": {str(key): value for key, value in self.status_counts.items()},
                    "windows": len(self.windows), "arrivals_in_window": self.arrivals_in_window,
                    "client_disconnects": self.client_disconnects, "timing": self._timing()}

    def _timing(self) -> dict[str, float | None]:
        """Where a throughput run's time went, seen from the server (times on `time.monotonic()`,
        which is system-wide on Linux, so a client in another process can compare its own).

        `hold_mean_s`: arrival (request fully read) to answer, mean over answered requests;
        `refill_gap_mean_s`: with `concurrency_limit` C and a client that keeps C in flight, the
        k-th answer frees the slot that the (k+C)-th arrival takes; the mean gap between the two
        is the client's turnaround (answer on the wire -> next request fully read here).

        `chain_*`: the same pairing followed back from the last answer (k, k-C, k-2C, ... down to
        the first round): the chain of calls that decided when the run ended. Its parts add up
        exactly (they telescope): `chain_first_arrival` (its first request at the server; the rest
        of the first round was sent before it), `chain_hold_s` (the sum of its holds),
        `chain_gap_s` (the sum of its turnarounds; `chain_links` of them), and the last finish.
        """
        done = [(r.arrived, r.finished) for r in self.requests
                if r.finished is not None and r.status == 200 and r.path.endswith(CHAT_SUFFIX)]
        if not done:
            return dict.fromkeys(("first_arrival", "last_finish", "hold_mean_s", "refill_gap_mean_s",
                                  "chain_first_arrival", "chain_hold_s", "chain_gap_s", "chain_links"))
        arrivals = sorted(arrived for arrived, _ in done)
        finishes = sorted(finished for _, finished in done)
        limit = self.concurrency_limit or 0
        gaps = [arrivals[k + limit] - finishes[k] for k in range(len(done) - limit)] if limit else []
        chain = list(range(len(done) - 1, -1, -limit))[::-1] if limit else []
        return {"first_arrival": arrivals[0], "last_finish": finishes[-1],
                "hold_mean_s": sum(finished - arrived for arrived, finished in done) / len(done),
                "refill_gap_mean_s": sum(gaps) / len(gaps) if gaps else None,
                "chain_first_arrival": arrivals[chain[0]] if chain else None,
                "chain_hold_s": sum(finishes[k] - arrivals[k] for k in chain) if chain else None,
                "chain_gap_s": sum(arrivals[k + limit] - finishes[k] for k in chain[:-1]) if chain else None,
                "chain_links": len(chain) - 1 if chain else None}

    def wait_until(self, predicate: Callable[[FakeOpenAIServer], bool], timeout_s: float = 5.0) -> bool:
        """Poll `predicate(self)` until true or the timeout; returns the last value."""
        end = time.monotonic() + timeout_s
        while time.monotonic() < end:
            if predicate(self):
                return True
            time.sleep(0.01)
        return predicate(self)

    # -- lifecycle -------------------------------------------------------------------------

    def start(self, port: int = 0) -> FakeOpenAIServer:
        self.port = port
        self._thread = threading.Thread(target=self._run, name="fake-openai", daemon=True)
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("fake OpenAI server did not start")
        return self

    def _run(self) -> None:
        self._loop = asyncio.new_event_loop()
        asyncio.set_event_loop(self._loop)
        self._loop.run_until_complete(self._listen())
        self._ready.set()
        self._loop.run_forever()
        self._loop.run_until_complete(self._shutdown())
        self._loop.close()

    async def _listen(self) -> None:
        self._server = await asyncio.start_server(self._handle, self.host, self.port, backlog=4096)
        self.port = self._server.sockets[0].getsockname()[1]

    async def _shutdown(self) -> None:
        if self._server is not None:
            self._server.close()
        tasks = [task for task in asyncio.all_tasks() if task is not asyncio.current_task()]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    def stop(self) -> None:
        if self._loop is not None and self._thread is not None and self._thread.is_alive():
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(10)

    def __enter__(self) -> FakeOpenAIServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    async def serve_forever(self, port: int) -> None:
        """Serve on the current loop (the command-line mode)."""
        self.port = port
        await self._listen()
        print(f"PORT {self.port}", flush=True)
        assert self._server is not None
        await self._server.serve_forever()

    # -- HTTP ------------------------------------------------------------------------------

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with self._lock:
            self.open_connections += 1
            self.total_connections += 1
            connection = self.total_connections
        buffer = b""
        aborted = False
        try:
            while True:
                while b"\r\n\r\n" not in buffer:
                    chunk = await reader.read(65536)
                    if not chunk:
                        return
                    buffer += chunk
                head, buffer = buffer.split(b"\r\n\r\n", 1)
                lines = head.decode("latin-1").split("\r\n")
                method, path, _version = lines[0].split(" ", 2)
                headers = {}
                for line in lines[1:]:
                    name, _, value = line.partition(":")
                    headers[name.strip().lower()] = value.strip()
                length = int(headers.get("content-length", "0"))
                while len(buffer) < length:
                    chunk = await reader.read(65536)
                    if not chunk:
                        return
                    buffer += chunk
                raw, buffer = buffer[:length], buffer[length:]
                keep, aborted, extra = await self._respond(method, path, headers, raw, reader, writer,
                                                           connection)
                buffer += extra
                if not keep or headers.get("connection", "").lower() == "close":
                    return
        except (ConnectionError, OSError):
            return
        finally:
            with self._lock:
                self.open_connections -= 1
            if not aborted:
                writer.close()
                # CancelledError: the server is shutting down with this connection open; the
                # connection is closed either way, and a cancelled handler task makes asyncio print
                # a traceback from its stream callback
                with contextlib.suppress(ConnectionError, OSError, asyncio.CancelledError):
                    await writer.wait_closed()

    async def _respond(self, method: str, path: str, headers: dict[str, str], raw: bytes,
                       reader: asyncio.StreamReader, writer: asyncio.StreamWriter, connection: int,
                       ) -> tuple[bool, bool, bytes]:
        """Answer one request. Returns (keep the connection, it was aborted, bytes read ahead)."""
        if path == "/_stats":
            self._write(writer, 200, {}, json.dumps(self.stats()).encode())
            return True, False, b""
        if path == "/_reset":
            self.reset_counters()
            self._write(writer, 200, {}, b"{}")
            return True, False, b""
        if path == "/_config":
            for key, value in json.loads(raw or b"{}").items():
                if not hasattr(self, key) or key.startswith("_"):
                    self._write(writer, 400, {}, json.dumps({"error": f"unknown setting {key}"}).encode())
                    return True, False, b""
                setattr(self, key, value)
            self._write(writer, 200, {}, b"{}")
            return True, False, b""
        if method == "GET" and path.endswith("/models"):
            self._write(writer, 200, {}, json.dumps({"data": [{"id": self.model}]}).encode())
            return True, False, b""
        if path == "/tokenize" and self.tokenizer is not None:
            text = str(json.loads(raw or b"{}").get("content", ""))
            tokens = [{"id": index, "piece": piece} for index, piece in enumerate(self.tokenizer(text))]
            self._write(writer, 200, {}, json.dumps({"tokens": tokens}).encode())
            return True, False, b""
        if not path.endswith(TEXT_SUFFIX):
            self._write(writer, 404, {}, json.dumps({"error": {"message": f"no route {path}"}}).encode())
            return True, False, b""

        arrived = time.monotonic()
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = None
        with self._lock:
            self.request_count += 1
            index = self.request_count
            self.current_concurrent += 1
            self.max_concurrent = max(self.max_concurrent, self.current_concurrent)
            in_flight = self.current_concurrent
            record = RecordedRequest(index, method, path, headers, body if self.record_bodies else None,
                                     arrived, connection)
            self.requests.append(record)
            if any(start + self.window_grace_s <= arrived < end for start, end in self.windows[-64:]):
                self.arrivals_in_window += 1
            queued = self._queue.pop(0) if self._queue else None
        try:
            reply = self._choose(record, in_flight, queued)
            delay = reply.delay_s + (self.latency_s if reply.status == 200 else 0.0)
            extra = b""
            if delay > 0:
                if self.watch_disconnects:
                    gone, extra = await self._sleep_watching(reader, delay)
                else:
                    gone = False
                    await asyncio.sleep(delay)
                if gone:
                    with self._lock:
                        self.client_disconnects += 1
                    return False, False, b""
        finally:
            with self._lock:
                self.current_concurrent -= 1
        return (*self._send(writer, reply, record, body, text=not path.endswith(CHAT_SUFFIX)), extra)

    def _choose(self, record: RecordedRequest, in_flight: int, queued: Reply | None) -> Reply:
        if self.concurrency_limit is not None and in_flight > self.concurrency_limit:
            return Reply(status=429, error="too many concurrent requests",
                         headers={"Retry-After": f"{self.limit_retry_after_s:g}"})
        if self.every_nth_429 and record.index % self.every_nth_429 == 0:
            return Reply(status=429, error="rate limited",
                         headers={"retry-after-ms": f"{self.nth_retry_after_s * 1000:g}"})
        if queued is not None:
            return queued
        if self.responder is not None:
            answer = self.responder(record)
            if answer is not None:
                return answer
        return self.default

    @staticmethod
    async def _sleep_watching(reader: asyncio.StreamReader, delay: float) -> tuple[bool, bytes]:
        """Sleep, but notice a client that hangs up meanwhile. Returns (client gone, data read)."""
        read = asyncio.ensure_future(reader.read(65536))
        done, _pending = await asyncio.wait({read}, timeout=delay)
        if read in done:
            data = read.result() if not read.cancelled() and read.exception() is None else b""
            if not data:
                return True, b""
            await asyncio.sleep(max(0.0, delay))  # pipelined data: keep it, finish the delay
            return False, data
        read.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await read
        return False, b""

    def _send(self, writer: asyncio.StreamWriter, reply: Reply, record: RecordedRequest,
              body: Any, *, text: bool = False) -> tuple[bool, bool]:
        now = time.monotonic()
        with self._lock:
            record.finished = now
            record.status = 0 if reply.reset else reply.status
            self.status_counts[record.status] = self.status_counts.get(record.status, 0) + 1
            if reply.status == 429 and not reply.reset:
                window = retry_after_of(reply.headers)
                if window:
                    self.windows.append((now, now + window))
        if reply.reset:
            sock = writer.get_extra_info("socket")
            if sock is not None:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            writer.transport.abort()
            return False, True
        payload = self._payload(reply, body, text=text)
        if reply.cut_after is not None:
            self._write(writer, reply.status, reply.headers, payload[: reply.cut_after],
                        content_length=len(payload))
            writer.close()
            return False, False
        self._write(writer, reply.status, reply.headers, payload)
        return True, False

    def _payload(self, reply: Reply, body: Any, *, text: bool = False) -> bytes:
        if reply.body is not None:
            if isinstance(reply.body, bytes):
                return reply.body
            if isinstance(reply.body, str):
                return reply.body.encode()
            return json.dumps(reply.body).encode()
        if reply.status >= 400:
            message = reply.error or http.HTTPStatus(reply.status).phrase
            return json.dumps({"error": {"message": message, "type": "fake_error",
                                         "code": reply.status}}).encode()
        model = (body or {}).get("model") or self.model if isinstance(body, dict) else self.model
        if reply.choices is not None:
            choices = reply.choices
        elif text:
            choice = {"index": 0, "text": reply.text, "finish_reason": reply.finish_reason, "logprobs": None}
            if reply.logprobs is not None:
                choice["logprobs"] = {"tokens": [token for token, _, _ in reply.logprobs],
                                      "token_logprobs": [logprob for _, logprob, _ in reply.logprobs],
                                      "top_logprobs": [dict(top) for _, _, top in reply.logprobs]}
            choices = [choice]
        else:
            choice: dict[str, Any] = {"index": 0, "message": {"role": "assistant", "content": reply.text},
                                      "finish_reason": reply.finish_reason, "logprobs": None}
            if reply.logprobs is not None:
                choice["logprobs"] = {"content": [
                    {"token": token, "logprob": logprob, "bytes": list(token.encode()),
                     "top_logprobs": [{"token": alt, "logprob": value} for alt, value in top.items()]}
                    for token, logprob, top in reply.logprobs]}
            choices = [choice]
        prompt_chars = sum(len(str(m.get("content", ""))) for m in (body or {}).get("messages") or []) \
            if isinstance(body, dict) else 0
        usage = reply.usage or {"prompt_tokens": max(1, prompt_chars // 4),
                                "completion_tokens": max(1, len(reply.text) // 4)}
        usage = {**usage, "total_tokens": usage.get("prompt_tokens", 0) + usage.get("completion_tokens", 0)}
        return json.dumps({"id": "chatcmpl-fake", "object": "chat.completion", "created": int(time.time()),
                           "model": model, "choices": choices, "usage": usage}).encode()

    @staticmethod
    def _write(writer: asyncio.StreamWriter, status: int, headers: dict[str, str], payload: bytes, *,
               content_length: int | None = None) -> None:
        try:
            phrase = http.HTTPStatus(status).phrase
        except ValueError:
            phrase = "Status"
        lines = [f"HTTP/1.1 {status} {phrase}", "content-type: application/json",
                 f"content-length: {len(payload) if content_length is None else content_length}"]
        lines += [f"{name}: {value}" for name, value in headers.items()]
        writer.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + payload)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="A fake OpenAI-compatible judge server on 127.0.0.1.")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--latency", type=float, default=0.0, help="seconds per answer")
    parser.add_argument("--concurrency-limit", type=int, default=None)
    parser.add_argument("--limit-retry-after", type=float, default=1.0)
    parser.add_argument("--every-nth-429", type=int, default=None)
    parser.add_argument("--nth-retry-after", type=float, default=0.05)
    parser.add_argument("--text", default='{"score": 1}')
    args = parser.parse_args(argv)
    server = FakeOpenAIServer(latency_s=args.latency, concurrency_limit=args.concurrency_limit,
                              limit_retry_after_s=args.limit_retry_after, every_nth_429=args.every_nth_429,
                              nth_retry_after_s=args.nth_retry_after, record_bodies=False,
                              watch_disconnects=False)
    server.default = Reply(text=args.text)
    try:
        asyncio.run(server.serve_forever(args.port))
    except KeyboardInterrupt:
        sys.exit(0)


if __name__ == "__main__":
    main()
