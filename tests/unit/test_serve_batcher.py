"""DynamicBatcher with a fake model: grouping, order, errors, closing."""

from __future__ import annotations

import threading
import time
from concurrent.futures import Future

import pytest

from labelloop_trainer.serving.request_batcher import BatcherClosed, DynamicBatcher


def test_items_that_arrive_together_share_a_batch_and_keep_their_order() -> None:
    seen: list[list[int]] = []

    def run(items: list[int]) -> list[int]:
        seen.append(items)
        return [i * 10 for i in items]

    batcher = DynamicBatcher(run, max_batch=4, max_wait_s=0.05)
    try:
        assert batcher.run(list(range(10))) == [i * 10 for i in range(10)]
    finally:
        batcher.close()
    assert [len(b) for b in seen] == [4, 4, 2]
    assert [i for b in seen for i in b] == list(range(10))


def test_concurrent_single_requests_are_batched() -> None:
    sizes: list[int] = []
    batcher: DynamicBatcher[str, str] = DynamicBatcher(
        lambda items: items, max_batch=64, max_wait_s=0.2, on_batch=lambda n, _: sizes.append(n)
    )
    answers: dict[int, str] = {}

    def ask(i: int) -> None:
        (answers[i],) = batcher.run([f"task {i}"])

    threads = [threading.Thread(target=ask, args=(i,)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    batcher.close()
    assert answers == {i: f"task {i}" for i in range(8)}
    assert sum(sizes) == 8 and len(sizes) < 8


def test_a_lone_request_waits_at_most_the_window() -> None:
    batcher: DynamicBatcher[str, str] = DynamicBatcher(
        lambda items: items, max_batch=32, max_wait_s=0.01
    )
    began = time.monotonic()
    assert batcher.run(["only"]) == ["only"]
    assert time.monotonic() - began < 1.0
    batcher.close()


def test_a_failing_batch_fails_each_of_its_items_and_the_next_batch_runs() -> None:
    def run(items: list[str]) -> list[str]:
        if "boom" in items:
            raise RuntimeError("model failed")
        return items

    batcher = DynamicBatcher(run, max_batch=8, max_wait_s=0.05)
    futures = batcher.submit(["a", "boom"])
    for future in futures:
        with pytest.raises(RuntimeError, match="model failed"):
            future.result(5)
    assert batcher.run(["c"]) == ["c"]
    batcher.close()


def test_a_wrong_output_count_is_an_error_not_a_hang() -> None:
    batcher: DynamicBatcher[str, str] = DynamicBatcher(
        lambda items: items[:1], max_batch=8, max_wait_s=0.05
    )
    with pytest.raises(RuntimeError, match="gave 1 outputs"):
        batcher.run(["a", "b"], timeout=5)
    batcher.close()


def test_closing_fails_what_is_still_queued() -> None:
    release = threading.Event()

    def slow(items: list[int]) -> list[int]:
        release.wait(5)
        return items

    batcher = DynamicBatcher(slow, max_batch=1, max_wait_s=0.0)
    running = batcher.submit([1])
    time.sleep(0.05)  # the worker has taken the first item
    queued: list[Future[int]] = batcher.submit([2, 3])
    closer = threading.Thread(target=batcher.close)
    closer.start()
    time.sleep(0.05)  # close() has marked the batcher closed and waits for the worker
    release.set()
    closer.join(5)
    assert running[0].result(5) == 1
    for future in queued:
        with pytest.raises(BatcherClosed):
            future.result(5)
    with pytest.raises(BatcherClosed):
        batcher.submit([4])


def test_max_batch_must_be_positive() -> None:
    with pytest.raises(ValueError, match="max_batch"):
        DynamicBatcher(lambda items: items, max_batch=0, max_wait_s=0.0)
