"""A private event loop in a daemon thread, owned by one reward pipeline.

Why: the runtime's semaphores, rate limiters and HTTP connection pool belong to one event loop.
Callers come from everywhere: TRL calls reward functions from its own loop, verl and Lambda
call synchronously, the reward server from uvicorn's loop. Running all judge work on one loop
and bridging callers to it keeps every limit process-wide and every connection reusable.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Coroutine
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeoutError
from typing import Any, TypeVar

T = TypeVar("T")
log = logging.getLogger(__name__)
CLOSE_TIMEOUT_S = 5.0


class LoopThread:
    """Runs coroutines on one long-lived loop; usable from sync code and from other loops."""

    def __init__(self, name: str = "judgerl-reward-loop") -> None:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name=name, daemon=True)
        self._thread.start()

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        return self._loop

    def submit(self, coro: Coroutine[Any, Any, T]) -> Future[T]:
        return asyncio.run_coroutine_threadsafe(coro, self._loop)

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        """Run to completion from synchronous code (not from this loop's own thread)."""
        if threading.current_thread() is self._thread:
            raise RuntimeError("LoopThread.run called from its own loop; await the coroutine instead")
        return self.submit(coro).result()

    async def arun(self, coro: Coroutine[Any, Any, T]) -> T:
        """Await from any loop; runs directly when already on this loop."""
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is self._loop:
            return await coro
        return await asyncio.wrap_future(self.submit(coro))

    def close(self) -> None:
        """Cancel and await every task still on the loop, then stop and close it.

        A failed batch can leave tasks behind (the other judgments of a `gather` whose first one
        raised); closing the loop under them would print "Event loop is closed" tracebacks later,
        when they are garbage-collected, after the user already has the one error that matters.
        """
        if self._loop.is_closed():
            return
        if self._thread.is_alive():
            try:
                self.submit(_cancel_pending()).result(timeout=CLOSE_TIMEOUT_S)
            except FutureTimeoutError:
                log.warning("tasks still running %.0f s after they were cancelled; closing anyway",
                            CLOSE_TIMEOUT_S)
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout=CLOSE_TIMEOUT_S)
        if not self._loop.is_running():
            self._loop.close()


async def _cancel_pending() -> None:
    """Cancel every other task on the running loop and wait until each has finished."""
    current = asyncio.current_task()
    pending = [task for task in asyncio.all_tasks() if task is not current and not task.done()]
    for task in pending:
        task.cancel()
    await asyncio.gather(*pending, return_exceptions=True)
    await asyncio.get_running_loop().shutdown_asyncgens()
