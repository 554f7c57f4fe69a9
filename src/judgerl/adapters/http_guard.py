"""Bounds on slow clients for `judgerl serve`, with backpressure instead of rejection.

Why: uvicorn has no timeout for reading a request. `timeout_keep_alive` only runs between
requests on a connection that has already answered one, and any byte received cancels it, so a
client that opens a connection and sends its headers one byte every few seconds (or never sends
them, or never finishes its body) holds a socket, a file descriptor and a protocol object for
ever; a few hundred of them exhaust the server (the "slowloris" attack). And a training cluster
is not a slow client: OpenRLHF posts every rollout of a batch at once (`rollout_batch_size` x
`n_samples_per_prompt`, e.g. 1,024 x 8 = 8,192 connections), each on a new connection, and
gives up on a rollout after 5 failed tries 1 s apart. A bound that closes honest connections
loses rewards (issue 26: a cap of 512 lost 58 % of a 4,096-rollout batch).

`guarded_h11_protocol(...)` returns uvicorn's h11 protocol with these bounds, enforced per
connection by one timer on the event loop:

- `idle_timeout_s` (180 s, OpenRLHF's own client timeout): from the moment a connection is let
  in until the first byte of its request. A busy client with thousands of rollouts in flight
  may take tens of seconds between its connection being accepted and sending its request (its
  own event loop is behind): that client is honest, and a silent connection costs only a
  descriptor. But while connections wait for a slot (the bound below is reached), a silent
  connection older than `header_timeout_s` is closed: it holds a slot an honest client waits
  for (one sweep a second while there is pressure);
- `header_timeout_s`: from the first byte of a request until its headers are complete;
  trickling bytes does not extend it;
- `body_timeout_s`: from the headers until the body is complete;
- `max_connections`: the connections the service reads and answers at once. It bounds memory
  and file descriptors, not honest concurrency: a connection beyond it is never closed, it
  waits. When the count reaches the bound, the server stops accepting (`GuardedServer`
  removes its listening sockets from the event loop), so new connections wait in the kernel's
  listen backlog (`backlog`, capped by `net.core.somaxconn`); the connections one accept burst
  already took past the bound wait accepted, unread and without a deadline, in arrival order.
  Each connection that closes lets the next waiting one in; accepting resumes when none waits.

A connection that misses a deadline is closed (nothing is answered: the client has not sent a
complete request). Once the request is read, the bounds stop: the app's own work (a judge
batch) may take as long as it takes, and uvicorn's keep-alive timeout governs idle time after.
A waiting connection has no deadline (its client sent nothing yet that could be late), so a
crowd of slow clients makes honest ones wait for a header timeout, never fail.

`raise_fd_limit()` raises the process's soft `RLIMIT_NOFILE` to its hard limit, and
`connection_limits()` fits `max_connections` under it (each connection is one descriptor; one
accept burst can add `backlog` more), saying what it changed.

Pausing the listener uses asyncio's selector loop (`loop.remove_reader` on the listening socket,
then `asyncio.Server._start_serving()` to resume): `server_config` pins uvicorn to the asyncio
loop. Without a `GuardedServer` (a plain `uvicorn.Server`) nothing pauses accepting: connections
past the bound still wait (accepted, unread), holding a descriptor each. The h11 protocol is
pure Python and ships with uvicorn; a reward server's time goes to judge calls, not HTTP parsing.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import resource
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import h11
import uvicorn
from uvicorn.protocols.http.h11_impl import H11Protocol

logger = logging.getLogger("judgerl.serve")

DEFAULT_IDLE_TIMEOUT_S = 180.0
DEFAULT_HEADER_TIMEOUT_S = 10.0
DEFAULT_BODY_TIMEOUT_S = 60.0
# OpenRLHF's largest common batch in flight (1,024 prompts x 8 samples = 8,192) twice over.
DEFAULT_MAX_CONNECTIONS = 16384
DEFAULT_BACKLOG = 16384
# Descriptors kept free for everything that is not a client connection (the listening socket,
# the judge's HTTP pool, the cache and journal files, logs).
FD_RESERVE = 256
SOMAXCONN_PATH = Path("/proc/sys/net/core/somaxconn")


class AcceptGate:
    """Counts the connections being served; past `limit`, stops accepting and queues the rest.

    Shared by every connection of one protocol class (one server). `listen_on` gives it the
    asyncio servers whose listening sockets it pauses.
    """

    def __init__(self, limit: int, header_timeout_s: float = DEFAULT_HEADER_TIMEOUT_S) -> None:
        self.limit = limit
        self.sweep_every_s = min(1.0, header_timeout_s / 2)
        self.active: set[GuardedH11Protocol] = set()
        self.waiting: collections.deque[GuardedH11Protocol] = collections.deque()
        self.servers: list[asyncio.base_events.Server] = []
        self.paused = False
        self.pauses = 0  # times accepting was paused (for tests and metrics)
        self.peak_active = 0
        self.peak_waiting = 0
        self.silent_closed = 0  # silent connections closed to free a slot under pressure
        self._sweep: asyncio.TimerHandle | None = None
        self._logged_at = -float("inf")

    def listen_on(self, servers: Iterable[asyncio.base_events.Server]) -> None:
        self.servers = list(servers)

    def admit(self, connection: GuardedH11Protocol) -> bool:
        """Whether `connection` is served now; otherwise it is queued (the caller pauses it)."""
        if len(self.active) < self.limit and not self.waiting:
            self.active.add(connection)
            self.peak_active = max(self.peak_active, len(self.active))
            if len(self.active) >= self.limit:
                self._pause_accepting()
            return True
        self.waiting.append(connection)
        self.peak_waiting = max(self.peak_waiting, len(self.waiting))
        self._pause_accepting()
        return False

    def release(self, connection: GuardedH11Protocol) -> None:
        """`connection` closed: let the next waiting one in, or resume accepting."""
        if connection in self.active:
            self.active.discard(connection)
        elif connection in self.waiting:  # left while waiting (its client gave up)
            self.waiting.remove(connection)
        while self.waiting and len(self.active) < self.limit:
            nxt = self.waiting.popleft()
            if nxt.transport.is_closing():
                continue
            self.active.add(nxt)
            nxt.let_in()
        if not self.waiting and len(self.active) < self.limit:
            self._resume_accepting()

    def under_pressure(self) -> bool:
        """Whether connections wait for a slot (queued here, or in the listen backlog)."""
        return self.paused or bool(self.waiting)

    def sweep_silent(self) -> None:
        """Under pressure, close the connections that have sent nothing for their header timeout."""
        self._sweep = None
        if not self.under_pressure():
            return
        now = time.monotonic()
        silent = [c for c in self.active if c.silent_for(now) >= c.header_timeout_s]
        for connection in silent:
            connection.close_silent()
        if silent:
            self.silent_closed += len(silent)
            logger.warning("closed %d connections that sent nothing for their header timeout while %s "
                           "connections waited for a slot (max %d)", len(silent),
                           len(self.waiting) or "more", self.limit)
        self._schedule_sweep()

    def _schedule_sweep(self) -> None:
        if self._sweep is not None:
            return
        self._sweep = asyncio.get_running_loop().call_later(self.sweep_every_s, self.sweep_silent)

    def _pause_accepting(self) -> None:
        self._schedule_sweep()
        if self.paused or not self.servers:
            return
        self.paused = True
        self.pauses += 1
        for server in self.servers:
            for sock in server.sockets:
                server.get_loop().remove_reader(sock.fileno())
        if time.monotonic() - self._logged_at >= 60:  # at the bound this toggles often: a line a minute
            self._logged_at = time.monotonic()
            logger.info("%d connections are being served (max %d): new connections wait in the listen "
                        "backlog (accepting paused %d times so far)", len(self.active), self.limit,
                        self.pauses)

    def _resume_accepting(self) -> None:
        if not self.paused:
            return
        self.paused = False
        for server in self.servers:
            if not server.sockets:
                continue  # closed (shutting down): nothing to resume
            # asyncio has no public pause/resume: this is what `Server.start_serving()` runs,
            # after it checked `_serving` (which the pause left True).
            server._serving = False
            server._start_serving()


class GuardedH11Protocol(H11Protocol):
    """uvicorn's h11 protocol with header / body read deadlines and a bound on connections served."""

    idle_timeout_s: float = DEFAULT_IDLE_TIMEOUT_S
    header_timeout_s: float = DEFAULT_HEADER_TIMEOUT_S
    body_timeout_s: float = DEFAULT_BODY_TIMEOUT_S
    max_connections: int = DEFAULT_MAX_CONNECTIONS
    gate: AcceptGate = AcceptGate(DEFAULT_MAX_CONNECTIONS)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._read_deadline: asyncio.TimerHandle | None = None
        # "idle" (no byte of the request yet), "headers", "body", or None (request read, or closed)
        self._reading: str | None = None
        self._phase_since = 0.0

    # -- uvicorn's protocol hooks ----------------------------------------------------------

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        if self.gate.admit(self):
            self._expect("idle")
        else:
            transport.pause_reading()  # waits unread, without a deadline, until let in

    def let_in(self) -> None:
        """A waiting connection's turn: read it, its deadlines from now."""
        self.transport.resume_reading()
        self._expect("idle")

    def silent_for(self, now: float) -> float:
        """Seconds this connection has been let in without sending a byte of its request (else 0)."""
        return now - self._phase_since if self._reading == "idle" else 0.0

    def close_silent(self) -> None:
        self._disarm()
        self.transport.close()

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        self._follow_state()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        self._follow_state()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)
        self.gate.release(self)

    # -- the deadline ----------------------------------------------------------------------

    def _follow_state(self) -> None:
        """Arm, re-arm or disarm the deadline after h11's view of the client's side changed."""
        if self.transport.is_closing():
            self._disarm()
            return
        state = self.conn.their_state
        if state is h11.IDLE and (self.cycle is None or self.cycle.response_complete):
            # waiting for the next request: its first byte, or the rest of its headers
            self._expect("headers" if self.conn.trailing_data[0] else "idle")
        elif state is h11.SEND_BODY:
            self._expect("body")
        else:
            self._disarm()  # the request is read (DONE), or the connection is ending

    def _expect(self, phase: str) -> None:
        if self._reading == phase:
            return  # keep the running deadline: bytes trickling in do not extend it
        self._disarm()
        self._reading = phase
        self._phase_since = time.monotonic()
        timeouts = {"idle": self.idle_timeout_s, "headers": self.header_timeout_s}
        timeout = timeouts.get(phase, self.body_timeout_s)
        self._read_deadline = self.loop.call_later(timeout, self._deadline_passed, phase, timeout)

    def _disarm(self) -> None:
        self._reading = None
        if self._read_deadline is not None:
            self._read_deadline.cancel()
            self._read_deadline = None

    def _deadline_passed(self, phase: str, timeout: float) -> None:
        self._read_deadline = None
        if self._reading != phase or self.transport.is_closing():
            return
        what = {"idle": "'s first byte", "headers": " headers"}.get(phase, " body")
        logger.warning("closing the connection from %s: its request%s did not arrive within %gs",
                       _peer(self.client), what, timeout)
        self._disarm()
        self.transport.close()


class GuardedServer(uvicorn.Server):
    """A `uvicorn.Server` whose guarded protocol may pause accepting (see the module docstring)."""

    async def startup(self, sockets: list[Any] | None = None) -> None:
        await super().startup(sockets=sockets)
        protocol = getattr(self.config, "http_protocol_class", None)
        if isinstance(protocol, type) and issubclass(protocol, GuardedH11Protocol):
            protocol.gate.listen_on(getattr(self, "servers", []))


def guarded_h11_protocol(*, header_timeout_s: float = DEFAULT_HEADER_TIMEOUT_S,
                         body_timeout_s: float = DEFAULT_BODY_TIMEOUT_S,
                         max_connections: int = DEFAULT_MAX_CONNECTIONS,
                         idle_timeout_s: float = DEFAULT_IDLE_TIMEOUT_S) -> type[GuardedH11Protocol]:
    """A `GuardedH11Protocol` class with these bounds (and its own gate), for `uvicorn.Config(http=...)`."""
    if min(header_timeout_s, body_timeout_s, idle_timeout_s) <= 0 or max_connections < 1:
        raise ValueError("timeouts must be positive and max_connections at least 1")
    return type("GuardedH11Protocol", (GuardedH11Protocol,), {
        "idle_timeout_s": float(idle_timeout_s),
        "header_timeout_s": float(header_timeout_s), "body_timeout_s": float(body_timeout_s),
        "max_connections": int(max_connections),
        "gate": AcceptGate(int(max_connections), float(header_timeout_s))})


def raise_fd_limit() -> tuple[int, int]:
    """Raise the soft RLIMIT_NOFILE to the hard limit (a process may); return (before, after)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = hard if hard != resource.RLIM_INFINITY else max(soft, 1 << 20)
    if soft != resource.RLIM_INFINITY and soft < target:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        except (ValueError, OSError) as exc:
            logger.warning("could not raise the open-file limit from %d to %d: %s", soft, target, exc)
            return soft, soft
        return soft, target
    return soft, soft


def somaxconn() -> int | None:
    """The kernel's cap on a listen backlog (`net.core.somaxconn`), where it can be read."""
    try:
        return int(SOMAXCONN_PATH.read_text().strip())
    except (OSError, ValueError):
        return None


def connection_limits(max_connections: int, backlog: int, *, open_files: int | None = None,
                      kernel_backlog: int | None = None) -> tuple[int, int, list[str]]:
    """(max_connections, backlog) fitted to the open-file limit and somaxconn, and what changed.

    Each connection served or waiting accepted is one descriptor, and one accept burst takes up
    to the backlog at once, so max_connections + backlog + FD_RESERVE must fit in the open-file
    limit. When they do not, the backlog gets at most a quarter of the room and the connections
    served the rest. (A smaller backlog loses nothing: when it is full the kernel drops the
    client's SYN and the client sends it again a second later, and again.)

    >>> connection_limits(16384, 16384, open_files=20000, kernel_backlog=4096)[:2]
    (15648, 4096)
    >>> connection_limits(16384, 16384, open_files=1 << 20, kernel_backlog=65535)[:2]
    (16384, 16384)
    >>> connection_limits(16384, 16384, open_files=1024, kernel_backlog=4096)[:2]
    (576, 192)
    """
    notes = []
    if open_files is None:
        open_files = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    if kernel_backlog is None:
        kernel_backlog = somaxconn()
    effective_backlog = backlog
    if kernel_backlog is not None and backlog > kernel_backlog:
        effective_backlog = kernel_backlog
        notes.append(f"the listen backlog is {kernel_backlog}, not {backlog}: the kernel caps it "
                     f"(raise it with `sysctl -w net.core.somaxconn={backlog}`)")
    room = open_files - FD_RESERVE
    if open_files != resource.RLIM_INFINITY and max_connections + effective_backlog > room:
        fitted_backlog = max(1, min(effective_backlog, room // 4))
        fitted = max(1, min(max_connections, room - fitted_backlog))
        notes.append(f"serving at most {fitted} connections at once (asked {max_connections}) with a backlog "
                     f"of {fitted_backlog}: the open-file limit is {open_files} (raise the hard limit, e.g. "
                     "LimitNOFILE=65536 in a systemd unit or `ulimit -Hn 65536` as root); more connections "
                     "wait to connect")
        max_connections, effective_backlog = fitted, fitted_backlog
    return max_connections, effective_backlog, notes


def _peer(client: tuple[str, int] | None) -> str:
    return f"{client[0]}:{client[1]}" if client else "an unknown client"


__all__ = ["DEFAULT_BACKLOG", "DEFAULT_BODY_TIMEOUT_S", "DEFAULT_HEADER_TIMEOUT_S", "DEFAULT_IDLE_TIMEOUT_S",
           "DEFAULT_MAX_CONNECTIONS",
           "AcceptGate", "GuardedH11Protocol", "GuardedServer", "connection_limits", "guarded_h11_protocol",
           "raise_fd_limit", "somaxconn"]
