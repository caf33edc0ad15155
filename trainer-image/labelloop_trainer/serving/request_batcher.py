"""Dynamic batching inside the event loop: many small requests, few forward passes.

Label Studio asks for predictions one task at a time whenever an annotator opens a task
without one, and many annotators do so at once; a forward pass over one short text leaves
most of the hardware idle, while one over 32 costs little more. So request handlers put
their tasks on a queue and await futures, and one batching task takes what has arrived —
waiting at most `max_wait_s` after the first item for more, up to `max_batch` items — and
runs them as one batch in a single worker thread. The event loop never runs the model, so
it keeps accepting connections and parsing requests while a batch computes, and the next
batch fills meanwhile: a loaded server starts each batch full without waiting at all. One
worker thread also means the model is never run from two threads at once.

Under load more items wait than one batch holds, and a batch of texts of mixed lengths pads
every text to the longest: most of a forward pass would compute padding. So when the queue
is longer than a batch, the batch is the oldest item and the items of the nearest lengths
(`length`) among the next few batches' worth: similar lengths, little padding, and no item
waits longer than it takes the items queued before it to become the oldest.

Items of a request that went away (its client disconnected, so its future was cancelled)
are dropped before they reach the model.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Generic, TypeVar

In = TypeVar("In")
Out = TypeVar("Out")

log = logging.getLogger(__name__)

WINDOW_BATCHES = 4
"""How many batches' worth of the oldest queued items a batch is chosen from."""


class BatcherClosed(RuntimeError):
    """The batcher was closed before the item was run."""


class DynamicBatcher(Generic[In, Out]):
    """Runs submitted items through `run` in batches of up to `max_batch` items.

    Used from one event loop; the batching task starts with the first `run`. `length(item)`,
    if given, groups items of similar length under load. `on_batch(size, seconds)` is told
    about every batch run (for metrics).
    """

    def __init__(
        self,
        run: Callable[[list[In]], list[Out]],
        *,
        max_batch: int,
        max_wait_s: float,
        length: Callable[[In], int] | None = None,
        on_batch: Callable[[int, float], None] | None = None,
    ) -> None:
        if max_batch < 1:
            raise ValueError(f"max_batch must be at least 1, got {max_batch}")
        self._run = run
        self._max_batch = max_batch
        self._max_wait_s = max(0.0, max_wait_s)
        self._length = length
        self._on_batch = on_batch
        self._pending: collections.deque[tuple[In, asyncio.Future[Out]]] = collections.deque()
        self._arrived = asyncio.Event()
        self._worker: asyncio.Task[None] | None = None
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="prelabel-model")
        self._closed = False

    async def run(self, items: Sequence[In]) -> list[Out]:
        """Queue `items` and wait for all of their outputs, in order."""
        if self._closed:
            raise BatcherClosed("the batcher is closed")
        loop = asyncio.get_running_loop()
        if self._worker is None:
            self._worker = loop.create_task(self._loop(), name="prelabel-batcher")
        futures: list[asyncio.Future[Out]] = [loop.create_future() for _ in items]
        self._pending.extend(zip(items, futures, strict=True))
        self._arrived.set()
        return list(await asyncio.gather(*futures))

    async def close(self) -> None:
        """Stop batching once the batch running now (if any) is done; items still queued
        fail with `BatcherClosed`."""
        self._closed = True
        self._arrived.set()
        if self._worker is not None:
            await self._worker
        while self._pending:
            _, future = self._pending.popleft()
            if not future.done():
                future.set_exception(BatcherClosed("the batcher was closed"))
        self._executor.shutdown(wait=True)

    async def _loop(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await self._arrived.wait()
            deadline = loop.time() + self._max_wait_s
            while len(self._pending) < self._max_batch and not self._closed:
                remaining = deadline - loop.time()
                if remaining <= 0:
                    break
                self._arrived.clear()
                try:
                    await asyncio.wait_for(self._arrived.wait(), remaining)
                except TimeoutError:
                    break
            if self._closed:
                return
            batch = self._take()
            if not self._pending:
                self._arrived.clear()
            if batch:
                await self._execute(batch)

    def _take(self) -> list[tuple[In, asyncio.Future[Out]]]:
        window: list[tuple[In, asyncio.Future[Out]]] = []
        while self._pending and len(window) < WINDOW_BATCHES * self._max_batch:
            entry = self._pending.popleft()
            if not entry[1].done():
                window.append(entry)
        if self._length is None or len(window) <= self._max_batch:
            batch, rest = window[: self._max_batch], window[self._max_batch :]
        else:
            lengths = [self._length(item) for item, _ in window]
            nearest = sorted(range(1, len(window)), key=lambda i: abs(lengths[i] - lengths[0]))
            chosen = {0, *nearest[: self._max_batch - 1]}
            batch = [window[i] for i in sorted(chosen)]
            rest = [entry for i, entry in enumerate(window) if i not in chosen]
        self._pending.extendleft(reversed(rest))
        return batch

    async def _execute(self, batch: list[tuple[In, asyncio.Future[Out]]]) -> None:
        items = [item for item, _ in batch]
        began = time.perf_counter()
        try:
            outputs = await asyncio.get_running_loop().run_in_executor(
                self._executor, self._run, items
            )
            if len(outputs) != len(items):
                raise RuntimeError(f"batch of {len(items)} gave {len(outputs)} outputs")
        except asyncio.CancelledError:  # closed mid-batch: its requests must not hang
            for _, future in batch:
                if not future.done():
                    future.set_exception(BatcherClosed("the batcher was closed"))
            raise
        except Exception as err:  # every waiting request must hear of it, not hang
            log.exception("a batch of %d failed", len(items))
            for _, future in batch:
                if not future.done():
                    future.set_exception(err)
            return
        if self._on_batch is not None:
            self._on_batch(len(items), time.perf_counter() - began)
        for (_, future), output in zip(batch, outputs, strict=True):
            if not future.done():
                future.set_result(output)
