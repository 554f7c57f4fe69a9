"""Shared test fixtures, and the guard that keeps the test suite off the network.

Why: tests must never reach anything but loopback (no model downloads, no real endpoints, no
surprise costs). A session-wide guard makes every socket `connect` to a non-loopback address
raise `NetworkAccessBlocked` (not an `OSError`, so no client mistakes it for a retryable
connection error) and fails the test that tried, even if the exception was swallowed. Hugging
Face libraries are switched to offline mode before anything imports them.
"""

from __future__ import annotations

import os
import socket
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"
os.environ["HF_DATASETS_OFFLINE"] = "1"

sys.path.insert(0, str(Path(__file__).resolve().parent))

from fake_openai import FakeOpenAIServer

LOOPBACK_HOSTS = frozenset({"127.0.0.1", "::1", "localhost", "::ffff:127.0.0.1", "0:0:0:0:0:0:0:1"})
_blocked_attempts: list[str] = []


class NetworkAccessBlocked(RuntimeError):
    """A test tried to open a socket to something other than loopback."""


def is_loopback(address: Any) -> bool:
    """True for loopback TCP/UDP addresses and for non-IP (Unix) sockets."""
    if not isinstance(address, tuple):
        return True  # AF_UNIX paths and abstract sockets
    host = str(address[0]).lower()
    return host in LOOPBACK_HOSTS or host.startswith("127.")


def _guard(original: Any) -> Any:
    def connect(self: socket.socket, address: Any, *args: Any, **kwargs: Any) -> Any:
        if self.family in (socket.AF_INET, socket.AF_INET6) and not is_loopback(address):
            _blocked_attempts.append(repr(address))
            raise NetworkAccessBlocked(f"tests may only connect to loopback, not {address!r}")
        return original(self, address, *args, **kwargs)
    return connect


@pytest.fixture(scope="session", autouse=True)
def _no_network() -> Iterator[None]:
    original_connect, original_connect_ex = socket.socket.connect, socket.socket.connect_ex
    socket.socket.connect = _guard(original_connect)  # type: ignore[method-assign]
    socket.socket.connect_ex = _guard(original_connect_ex)  # type: ignore[method-assign]
    try:
        yield
    finally:
        socket.socket.connect = original_connect  # type: ignore[method-assign]
        socket.socket.connect_ex = original_connect_ex  # type: ignore[method-assign]


@pytest.fixture(autouse=True)
def _fail_on_blocked_network() -> Iterator[None]:
    _blocked_attempts.clear()
    yield
    if _blocked_attempts:
        attempts = list(_blocked_attempts)
        _blocked_attempts.clear()
        pytest.fail(f"the test tried to reach the network: {attempts}")


@pytest.fixture
def fake_openai() -> Iterator[FakeOpenAIServer]:
    """A running fake OpenAI-compatible server on 127.0.0.1 (see tests/fake_openai.py)."""
    server = FakeOpenAIServer().start()
    try:
        yield server
    finally:
        server.stop()
