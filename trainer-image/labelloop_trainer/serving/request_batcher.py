"""Dynamic batching: many small requests, few forward passes.

Label Studio asks for predictions one task at a time whenever an annotator opens a task
without one, and many annotators do so at once; a forward pass over one short text leaves
most of the hardware idle, while one over 32 costs little more. So request threads put their
tasks on a queue and wait on futures, and a single worker thread takes what has arrived —
waiting at most `max_wait_s` after the first item for more, up to `max_batch` items — and
runs them as one batch. An idle server answers a lone request after `max_wait_s` at worst;
a loaded one fills its batches without waiting at all. One worker also means the model is
never run from two threads at once.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from typing import Generic, TypeVar

In = TypeVar("In")
Out = TypeVar("Out")

log = logging.getLogger(__name__)


class BatcherClosed(RuntimeError):
    """The batcher was closed before the item was run."""


class DynamicBatcher(Generic[In, Out]):
    """Runs submitted items through `run` in batches of up to `max_batch` items.

    `on_batch(size, seconds)` is told about every batch run (for metrics).
    """

    def __init__(
        self,
        run: Callable[[list[In]], list[Out]],
        *,
        max_batch: int,
        max_wait_s: float,
        on_batch: Callable[[int, float], None] | None = None,
    ) -> None:
        if max_batch < 1:
            raise ValueError(f"max_batch must be at least 1, got {max_batch}")
        self._run = run
        self._max_batch = max_batch
        self._max_wait_s = max(0.0, max_wait_s)
        self._on_batch = on_batch
        self._queue: queue.SimpleQueue[tuple[In, Future[Out]] | None] = queue.SimpleQueue()
        self._closed = threading.Event()
        self._worker = threading.Thread(target=self._loop, name="prelabel-batcher", daemon=True)
        self._worker.start()

    def submit(self, items: Sequence[In]) -> list[Future[Out]]:
        """Queue `items`; each future resolves to its item's output (or its batch's error)."""
        if self._closed.is_set():
            raise BatcherClosed("the batcher is closed")
        futures: list[Future[Out]] = []
        for item in items:
            future: Future[Out] = Future()
            self._queue.put((item, future))
            futures.append(future)
        return futures

    def run(self, items: Sequence[In], timeout: float | None = None) -> list[Out]:
        """Submit `items` and wait for all of their outputs."""
        return [f.result(timeout) for f in self.submit(items)]

    def close(self) -> None:
        """Stop the worker; items still queued fail with `BatcherClosed`."""
        self._closed.set()
        self._queue.put(None)
        self._worker.join()
        while True:
            try:
                entry = self._queue.get_nowait()
            except queue.Empty:
                return
            if entry is not None:
                entry[1].set_exception(BatcherClosed("the batcher was closed"))

    def _loop(self) -> None:
        while not self._closed.is_set():
            first = self._queue.get()
            if first is None:
                return
            batch = [first]
            deadline = time.monotonic() + self._max_wait_s
            stop = False
            while len(batch) < self._max_batch:
                remaining = deadline - time.monotonic()
                try:
                    entry = (
                        self._queue.get(timeout=remaining)
                        if remaining > 0
                        else self._queue.get_nowait()
                    )
                except queue.Empty:
                    break
                if entry is None:
                    stop = True
                    break
                batch.append(entry)
            self._execute(batch)
            if stop:
                return

    def _execute(self, batch: list[tuple[In, Future[Out]]]) -> None:
        items = [item for item, _ in batch]
        began = time.perf_counter()
        try:
            outputs = self._run(items)
            if len(outputs) != len(items):
                raise RuntimeError(f"batch of {len(items)} gave {len(outputs)} outputs")
        except Exception as err:  # every waiting request must hear of it, not hang
            log.exception("a batch of %d failed", len(items))
            for _, future in batch:
                future.set_exception(err)
            return
        if self._on_batch is not None:
            self._on_batch(len(items), time.perf_counter() - began)
        for (_, future), output in zip(batch, outputs, strict=True):
            future.set_result(output)
