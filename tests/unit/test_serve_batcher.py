"""DynamicBatcher with a fake model: grouping, order, errors, cancelled requests, closing."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

import pytest

from labelloop_trainer.serving.request_batcher import BatcherClosed, DynamicBatcher

T = TypeVar("T")


def run_async(body: Callable[[], Awaitable[T]]) -> T:
    async def main() -> T:
        return await asyncio.wait_for(body(), 10)

    return asyncio.run(main())


def test_items_that_arrive_together_share_a_batch_and_keep_their_order() -> None:
    seen: list[list[int]] = []

    def model(items: list[int]) -> list[int]:
        seen.append(items)
        return [i * 10 for i in items]

    async def body() -> list[int]:
        batcher = DynamicBatcher(model, max_batch=4, max_wait_s=0.05)
        try:
            return await batcher.run(list(range(10)))
        finally:
            await batcher.close()

    assert run_async(body) == [i * 10 for i in range(10)]
    assert [len(b) for b in seen] == [4, 4, 2]
    assert [i for b in seen for i in b] == list(range(10))


def test_concurrent_single_requests_are_batched() -> None:
    sizes: list[int] = []

    async def body() -> list[list[str]]:
        batcher: DynamicBatcher[str, str] = DynamicBatcher(
            lambda items: items, max_batch=64, max_wait_s=0.2, on_batch=lambda n, _: sizes.append(n)
        )
        try:
            return await asyncio.gather(*(batcher.run([f"task {i}"]) for i in range(8)))
        finally:
            await batcher.close()

    assert run_async(body) == [[f"task {i}"] for i in range(8)]
    assert sum(sizes) == 8 and len(sizes) < 8


def test_the_model_runs_off_the_event_loop() -> None:
    """While a batch computes, the loop keeps answering (here: a timer fires on time)."""
    threads: set[str] = set()

    def slow(items: list[int]) -> list[int]:
        threads.add(threading.current_thread().name)
        time.sleep(0.3)
        return items

    async def body() -> float:
        batcher = DynamicBatcher(slow, max_batch=8, max_wait_s=0.0)
        running = asyncio.ensure_future(batcher.run([1]))
        began = time.monotonic()
        await asyncio.sleep(0.05)
        woke = time.monotonic() - began
        assert await running == [1]
        await batcher.close()
        return woke

    assert run_async(body) < 0.25
    assert threads and threading.current_thread().name not in threads


def test_a_lone_request_waits_at_most_the_window() -> None:
    async def body() -> float:
        batcher: DynamicBatcher[str, str] = DynamicBatcher(
            lambda items: items, max_batch=32, max_wait_s=0.01
        )
        began = time.monotonic()
        assert await batcher.run(["only"]) == ["only"]
        took = time.monotonic() - began
        await batcher.close()
        return took

    assert run_async(body) < 1.0


def test_a_failing_batch_fails_each_of_its_items_and_the_next_batch_runs() -> None:
    def model(items: list[str]) -> list[str]:
        if "boom" in items:
            raise RuntimeError("model failed")
        return items

    async def body() -> None:
        batcher = DynamicBatcher(model, max_batch=8, max_wait_s=0.05)
        with pytest.raises(RuntimeError, match="model failed"):
            await batcher.run(["a", "boom"])
        assert await batcher.run(["c"]) == ["c"]
        await batcher.close()

    run_async(body)


def test_a_wrong_output_count_is_an_error_not_a_hang() -> None:
    async def body() -> None:
        batcher: DynamicBatcher[str, str] = DynamicBatcher(
            lambda items: items[:1], max_batch=8, max_wait_s=0.05
        )
        with pytest.raises(RuntimeError, match="gave 1 outputs"):
            await batcher.run(["a", "b"])
        await batcher.close()

    run_async(body)


def test_items_of_a_cancelled_request_never_reach_the_model() -> None:
    seen: list[int] = []
    release = threading.Event()

    def model(items: list[int]) -> list[int]:
        seen.extend(items)
        release.wait(5)
        return items

    async def body() -> None:
        batcher = DynamicBatcher(model, max_batch=1, max_wait_s=0.0)
        first = asyncio.ensure_future(batcher.run([1]))
        await asyncio.sleep(0.05)  # the model is busy with item 1
        gone = asyncio.ensure_future(batcher.run([2]))
        await asyncio.sleep(0.01)
        gone.cancel()  # its client went away
        release.set()
        assert await first == [1]
        assert await batcher.run([3]) == [3]
        await batcher.close()

    run_async(body)
    assert seen == [1, 3]


def test_closing_finishes_the_running_batch_and_fails_what_is_still_queued() -> None:
    release = threading.Event()

    def slow(items: list[int]) -> list[int]:
        release.wait(5)
        return items

    async def body() -> None:
        batcher = DynamicBatcher(slow, max_batch=1, max_wait_s=0.0)
        running = asyncio.ensure_future(batcher.run([1]))
        await asyncio.sleep(0.05)  # the worker has taken the first item
        queued = asyncio.ensure_future(batcher.run([2, 3]))
        await asyncio.sleep(0.01)
        closing = asyncio.ensure_future(batcher.close())
        await asyncio.sleep(0.05)
        release.set()
        await closing
        assert await running == [1]
        with pytest.raises(BatcherClosed):
            await queued
        with pytest.raises(BatcherClosed):
            await batcher.run([4])

    run_async(body)


def test_max_batch_must_be_positive() -> None:
    with pytest.raises(ValueError, match="max_batch"):
        DynamicBatcher(lambda items: items, max_batch=0, max_wait_s=0.0)


def test_under_load_a_batch_is_the_oldest_item_and_those_nearest_its_length() -> None:
    seen: list[list[str]] = []
    release = threading.Event()

    def model(items: list[str]) -> list[str]:
        release.wait(5)
        seen.append(items)
        return items

    async def body() -> None:
        batcher = DynamicBatcher(model, max_batch=2, max_wait_s=0.0, length=len)
        busy = asyncio.ensure_future(batcher.run(["x"]))
        await asyncio.sleep(0.05)  # the model is busy: the rest queues up
        waiting = asyncio.gather(*(batcher.run([t]) for t in ["aaaa", "b", "cc", "dddd", "e"]))
        await asyncio.sleep(0.01)
        release.set()
        assert await busy == ["x"]
        assert await waiting == [["aaaa"], ["b"], ["cc"], ["dddd"], ["e"]]
        await batcher.close()

    run_async(body)
    assert seen == [["x"], ["aaaa", "dddd"], ["b", "e"], ["cc"]]
