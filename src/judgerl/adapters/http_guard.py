"""Bounds on slow clients for `judgerl serve`: a header timeout, a body timeout, a connection cap.

Why: uvicorn has no timeout for reading a request. `timeout_keep_alive` only runs between
requests on a connection that has already answered one, and any byte received cancels it, so a
client that opens a connection and sends its headers one byte every few seconds (or never sends
them, or never finishes its body) holds a socket, a file descriptor and a protocol object for
ever; a few hundred of them exhaust the server (the "slowloris" attack).

`guarded_h11_protocol(...)` returns uvicorn's h11 protocol with three bounds added, enforced
per connection by one timer on the event loop:

- `header_timeout_s`: from the moment a connection opens (or its previous response was sent)
  until the request's headers are complete; trickling bytes does not extend it;
- `body_timeout_s`: from the headers until the body is complete;
- `max_connections`: connections beyond this many open at once are closed as they arrive.

A connection that misses a deadline is closed (nothing is answered: the client has not sent a
complete request). Once the request is read, the bounds stop: the app's own work (a judge
batch) may take as long as it takes, and uvicorn's keep-alive timeout governs idle time after.
The h11 protocol is pure Python and ships with uvicorn; a reward server's time goes to judge
calls, not HTTP parsing.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol

logger = logging.getLogger("judgerl.serve")

DEFAULT_HEADER_TIMEOUT_S = 10.0
DEFAULT_BODY_TIMEOUT_S = 60.0
DEFAULT_MAX_CONNECTIONS = 512


class GuardedH11Protocol(H11Protocol):
    """uvicorn's h11 protocol with header / body read deadlines and a cap on open connections."""

    header_timeout_s: float = DEFAULT_HEADER_TIMEOUT_S
    body_timeout_s: float = DEFAULT_BODY_TIMEOUT_S
    max_connections: int = DEFAULT_MAX_CONNECTIONS

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._read_deadline: asyncio.TimerHandle | None = None
        self._reading: str | None = None  # "headers", "body" or None (request read, or closed)

    # -- uvicorn's protocol hooks ----------------------------------------------------------

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        if len(self.connections) > self.max_connections:
            logger.warning("closing a new connection from %s: %d connections are open (max %d)",
                           _peer(self.client), len(self.connections), self.max_connections)
            self._close()
            return
        self._expect("headers")

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        self._follow_state()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        self._follow_state()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    # -- the deadline ----------------------------------------------------------------------

    def _follow_state(self) -> None:
        """Arm, re-arm or disarm the deadline after h11's view of the client's side changed."""
        if self.transport.is_closing():
            self._disarm()
            return
        state = self.conn.their_state
        if state is h11.IDLE and (self.cycle is None or self.cycle.response_complete):
            self._expect("headers")  # waiting for (the rest of) the next request's headers
        elif state is h11.SEND_BODY:
            self._expect("body")
        else:
            self._disarm()  # the request is read (DONE), or the connection is ending

    def _expect(self, phase: str) -> None:
        if self._reading == phase:
            return  # keep the running deadline: bytes trickling in do not extend it
        self._disarm()
        self._reading = phase
        timeout = self.header_timeout_s if phase == "headers" else self.body_timeout_s
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
        logger.warning("closing the connection from %s: its request %s did not arrive within %gs",
                       _peer(self.client), "headers" if phase == "headers" else "body", timeout)
        self._close()

    def _close(self) -> None:
        self._disarm()
        self.transport.close()


def guarded_h11_protocol(*, header_timeout_s: float = DEFAULT_HEADER_TIMEOUT_S,
                         body_timeout_s: float = DEFAULT_BODY_TIMEOUT_S,
                         max_connections: int = DEFAULT_MAX_CONNECTIONS) -> type[GuardedH11Protocol]:
    """A `GuardedH11Protocol` class with these bounds, to pass as `uvicorn.Config(http=...)`."""
    if header_timeout_s <= 0 or body_timeout_s <= 0 or max_connections < 1:
        raise ValueError("timeouts must be positive and max_connections at least 1")
    return type("GuardedH11Protocol", (GuardedH11Protocol,), {
        "header_timeout_s": float(header_timeout_s), "body_timeout_s": float(body_timeout_s),
        "max_connections": int(max_connections)})


def _peer(client: tuple[str, int] | None) -> str:
    return f"{client[0]}:{client[1]}" if client else "an unknown client"


__all__ = ["DEFAULT_BODY_TIMEOUT_S", "DEFAULT_HEADER_TIMEOUT_S", "DEFAULT_MAX_CONNECTIONS",
           "GuardedH11Protocol", "guarded_h11_protocol"]
