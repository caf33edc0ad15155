"""Who wakes whom: children their owners, custom resources those that read them, and how a
woken reconcile loop paces its passes (wakes coalesce, rechecks, backoff, resync)."""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import kopf
import pytest
from kubernetes.client.exceptions import ApiException

from labelloop.controllers import driver
from labelloop.controllers.cache import CUSTOM, JOBS, PODS, WatchCache
from labelloop.controllers.wakeups import (
    Wakeups,
    dependents,
    owners_of,
    seen_signature,
    self_signature,
)
from labelloop.metrics import ObjectKey

AP, FTJ, PS = "AnnotationProject", "FineTuneJob", "PrelabelService"


def obj(name: str, spec: dict[str, Any] | None = None, **meta: Any) -> dict[str, Any]:
    return {"metadata": {"name": name, "namespace": "ml", **meta}, "spec": spec or {}}


@pytest.mark.parametrize(
    ("labels", "owners"),
    [
        ({"labelloop.io/finetunejob": "train"}, [ObjectKey(FTJ, "ml", "train")]),
        ({"labelloop.io/prelabelservice": "serve"}, [ObjectKey(PS, "ml", "serve")]),
        ({"labelloop.io/annotationproject": "reviews"}, [ObjectKey(AP, "ml", "reviews")]),
        ({"app.kubernetes.io/name": "other"}, []),
        ({"labelloop.io/finetunejob": ""}, []),
    ],
)
def test_a_child_wakes_the_owner_its_label_names(
    labels: dict[str, str], owners: list[ObjectKey]
) -> None:
    assert owners_of("ml", labels) == owners


SERVICES = [
    obj("by-project", {"annotationProjectRef": {"name": "reviews"}}),
    obj(
        "by-job",
        {"annotationProjectRef": {"name": "other"}, "model": {"fineTuneJobRef": {"name": "r1"}}},
    ),
    obj("elsewhere", {"annotationProjectRef": {"name": "other"}}),
]
PROJECTS = [
    obj("reviews", {"prelabel": {"serviceRef": {"name": "by-project"}}}),
    obj("other", {}),
]
JOBS_OF = [
    obj("r1", {"annotationProjectRef": {"name": "reviews"}}),
    obj("file", {"dataset": {"uri": "pvc://d/x"}}),
]


def objects(kind: str) -> list[Mapping[str, Any]]:
    return {PS: SERVICES, AP: PROJECTS, FTJ: JOBS_OF}[kind]  # type: ignore[return-value]


@pytest.mark.parametrize(
    ("kind", "body", "woken"),
    [
        (
            FTJ,
            JOBS_OF[0],
            [(AP, "reviews"), (PS, "by-project"), (PS, "by-job")],
        ),
        (FTJ, JOBS_OF[1], []),  # trained on a file: no project, no service names it
        (
            FTJ,
            obj("r9", {"annotationProjectRef": {"name": "other"}}),
            [(AP, "other"), (PS, "by-job"), (PS, "elsewhere")],
        ),
        (AP, PROJECTS[0], [(PS, "by-project"), (FTJ, "r1")]),
        (AP, PROJECTS[1], [(PS, "by-job"), (PS, "elsewhere")]),
        (PS, SERVICES[0], [(AP, "reviews")]),
        (PS, SERVICES[2], []),
    ],
)
def test_a_custom_resource_wakes_those_that_read_it(
    kind: str, body: dict[str, Any], woken: list[tuple[str, str]]
) -> None:
    found = dependents(kind, body, objects)
    assert len(found) == len(woken)
    assert set(found) == {ObjectKey(k, "ml", n) for k, n in woken}


def test_own_status_writes_wake_only_dependents_and_training_progress_wakes_nobody() -> None:
    job = obj("r1", {"annotationProjectRef": {"name": "reviews"}}, generation=1)
    job["status"] = {"phase": "Running", "progress": {"epoch": 1}}
    wakeups = Wakeups()
    assert wakeups.observe(FTJ, job) == (True, True)  # first seen
    job["status"]["progress"] = {"epoch": 2}
    assert wakeups.observe(FTJ, job) == (False, False)
    job["status"]["phase"] = "Succeeded"
    assert wakeups.observe(FTJ, job) == (False, True)
    job["metadata"]["generation"] = 2
    job["spec"]["baseModel"] = {"uri": "pvc://models/b"}
    assert wakeups.observe(FTJ, job) == (True, True)
    job["metadata"]["annotations"] = {"labelloop.io/previous-version-uri": ""}  # the operator's
    assert wakeups.observe(FTJ, job) == (False, False)
    job["metadata"]["annotations"]["team"] = "a"  # a person's
    assert wakeups.observe(FTJ, job) == (True, False)
    assert self_signature(job) != self_signature(obj("r1"))
    assert seen_signature(AP, {"status": {"progress": 1}}) != seen_signature(AP, {"status": {}})


def test_the_watch_cache_answers_by_name_and_labels_and_keeps_little_of_a_pod() -> None:
    cache = WatchCache([PODS])
    pod: dict[str, Any] = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": "p0",
            "namespace": "ml",
            "labels": {"job-name": "train"},
            "managedFields": [{"manager": "kubelet"}],
        },
        "spec": {"containers": [{"name": "c"}], "volumes": [{"name": "v"}]},
        "status": {"phase": "Running"},
    }
    cache.put(pod)
    cache.put({**pod, "apiVersion": "batch/v1", "kind": "Job"})  # not a cached kind
    assert cache.covers("v1", "Pod") and not cache.covers(JOBS.api_version, JOBS.kind)
    kept = cache.get("v1", "Pod", "p0", "ml")
    assert kept is not None
    assert kept["spec"] == {"volumes": [{"name": "v"}]} and kept["status"] == pod["status"]
    assert "managedFields" not in kept["metadata"]
    assert pod["metadata"]["managedFields"]  # the watch's body is left as it was
    assert cache.list("v1", "Pod", "ml", {"job-name": "train"}) == [kept]
    assert cache.list("v1", "Pod", None, {}) == [kept]
    assert cache.list("v1", "Pod", "ml", {"job-name": "other"}) == []
    assert cache.list("v1", "Pod", "elsewhere", {}) == []
    cache.remove(pod)
    assert cache.get("v1", "Pod", "p0", "ml") is None


def versioned(version: str, **status: Any) -> dict[str, Any]:
    return {
        "apiVersion": "labelloop.io/v1alpha1",
        "kind": FTJ,
        "metadata": {"name": "r1", "namespace": "ml", "resourceVersion": version},
        "status": status,
    }


def test_the_watch_cache_keeps_the_newest_body_and_forgets_deleted_objects() -> None:
    cache = WatchCache(CUSTOM)
    cache.put(versioned("10", phase="Running"))
    cache.put(versioned("12", phase="Succeeded"))  # a write's answer, before its watch event
    cache.put(versioned("11", phase="Running"))  # a watch event older than that write
    kept = cache.get("labelloop.io/v1alpha1", FTJ, "r1", "ml")
    assert kept is not None and kept["status"] == {"phase": "Succeeded"}
    cache.remove(versioned("13"))
    cache.put(versioned("12", phase="Succeeded"))  # a write answered before the deletion
    assert cache.get("labelloop.io/v1alpha1", FTJ, "r1", "ml") is None
    cache.put(versioned("20"))  # made again under the same name
    assert cache.get("labelloop.io/v1alpha1", FTJ, "r1", "ml") is not None


def test_a_pass_sees_its_own_last_write_before_the_watch_brings_it() -> None:
    from labelloop.api import FINE_TUNE_JOB

    cache = WatchCache(CUSTOM)
    live = kopf.Body(versioned("10"))  # type: ignore[arg-type]
    assert driver.snapshot(FINE_TUNE_JOB, live, cache).status == {}
    cache.put(versioned("11", phase="Pending"))
    seen = driver.snapshot(FINE_TUNE_JOB, live, cache)
    assert seen.status == {"phase": "Pending"}
    kept = cache.get("labelloop.io/v1alpha1", FTJ, "r1", "ml")
    assert kept is not None and seen["status"] is not kept["status"]  # a copy to work on
    live = kopf.Body(versioned("12", phase="Running"))  # type: ignore[arg-type]
    assert driver.snapshot(FINE_TUNE_JOB, live, cache).status == {"phase": "Running"}


@pytest.mark.parametrize(
    ("failures", "delay"),
    [(0, 1.0), (1, 1.0), (2, 2.0), (3, 4.0), (9, 256.0), (10, 300.0), (50, 300.0)],
)
def test_failed_passes_back_off_exponentially_up_to_a_cap(failures: int, delay: float) -> None:
    assert driver.retry_delay(failures) == delay


def test_the_resync_is_spread_a_tenth_either_way() -> None:
    assert driver.resync_delay(600, lambda low, high: low) == pytest.approx(540)
    assert driver.resync_delay(600, lambda low, high: high) == pytest.approx(660)


def api_error(status: int, reason: str, body: str) -> ApiException:
    error = ApiException(status=status, reason=reason)
    error.body = body
    return error


TERMINATING = api_error(
    403,
    "Forbidden",
    '{"kind":"Status","message":"jobs \\"x\\" is forbidden: unable to create new content in '
    'namespace ml because it is being terminated","reason":"Forbidden","details":{"causes":'
    '[{"reason":"NamespaceTerminating"}]},"code":403}',
)


def test_failures_are_logged_once_per_transition_without_a_traceback(
    caplog: pytest.LogCaptureFixture,
) -> None:
    failures = driver.Failures("FineTuneJob ml/r1")
    conflict = api_error(500, "Internal Server Error", '{"message":"etcd timed out"}')
    with caplog.at_level(logging.INFO, logger=driver.__name__):
        delays = [failures.failed(conflict, resync=600) for _ in range(4)]
        failures.failed(api_error(409, "Conflict", '{"message":"exists"}'), resync=600)
        failures.succeeded()
        failures.succeeded()
    assert delays == [1.0, 2.0, 4.0, 8.0]
    lines = [r.getMessage() for r in caplog.records]
    assert lines == [
        "FineTuneJob ml/r1: reconcile failed: API 500 Internal Server Error: etcd timed out "
        "(retrying in 1s, then less often)",
        "FineTuneJob ml/r1: reconcile failed: API 409 Conflict: exists (retrying in 16s, then "
        "less often)",
        "FineTuneJob ml/r1: reconcile recovered after 5 failed pass(es)",
    ]
    assert not any(r.exc_info for r in caplog.records)


def test_a_namespace_being_deleted_is_left_alone_until_the_resync(
    caplog: pytest.LogCaptureFixture,
) -> None:
    failures = driver.Failures("FineTuneJob ml/r1")
    with caplog.at_level(logging.INFO, logger=driver.__name__):
        delays = [failures.failed(TERMINATING, resync=600) for _ in range(3)]
    assert delays == [600, 600, 600]
    assert [r.getMessage() for r in caplog.records] == [
        "FineTuneJob ml/r1: its namespace is being deleted; left alone"
    ]
    assert driver.namespace_terminating(TERMINATING)
    assert not driver.namespace_terminating(api_error(403, "Forbidden", '{"message":"RBAC"}'))


def test_an_unexpected_failure_keeps_its_traceback_once(caplog: pytest.LogCaptureFixture) -> None:
    failures = driver.Failures("PrelabelService ml/s")
    with caplog.at_level(logging.INFO, logger=driver.__name__):
        failures.failed(KeyError("versions"), resync=600)
        failures.failed(KeyError("versions"), resync=600)
    assert len(caplog.records) == 1 and caplog.records[0].exc_info is not None


class Passes:
    """A pass handler for the loop: records each pass, answers as told."""

    def __init__(self) -> None:
        self.count = 0
        self.recheck: float | None = None
        self.fail: BaseException | None = None
        self.ran = threading.Event()

    def __call__(self, **kwargs: Any) -> float | None:
        self.count += 1
        self.ran.set()
        if self.fail is not None:
            raise self.fail
        return self.recheck


class Context:
    def __init__(self, resync: int) -> None:
        self.wakeups = Wakeups()
        self.config = type("Config", (), {"resync_seconds": resync})()
        self.kube = type("Kube", (), {"cache": WatchCache()})()
        self.pass_slots: dict[str, asyncio.Semaphore] = {}


async def settle(passes: Passes, count: int, timeout: float = 5.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while passes.count < count:
        assert asyncio.get_running_loop().time() < deadline, f"{passes.count} passes, not {count}"
        await asyncio.sleep(0.01)
    await asyncio.sleep(0.1)  # and no more come


def test_a_loop_passes_once_at_start_then_only_when_woken_or_asked() -> None:
    """The resync is an hour: every pass after the first is a wake or a recheck."""
    from labelloop.api import FINE_TUNE_JOB

    async def scenario() -> None:
        passes, context = Passes(), Context(resync=3600)
        body = kopf.Body({"metadata": {"name": "r1", "namespace": "ml", "resourceVersion": "1"}})
        memo = kopf.Memo(context=context)
        with ThreadPoolExecutor(2) as pool:
            loop = asyncio.create_task(
                driver.reconcile_loop(
                    FINE_TUNE_JOB, passes, body, memo, pool, stopped=asyncio.Event()
                )
            )
            await settle(passes, 1)
            assert passes.count == 1
            key = ObjectKey(FINE_TUNE_JOB.kind, "ml", "r1")
            for _ in range(5):  # wakes that arrive together make one pass
                assert context.wakeups.wake(key)
            await settle(passes, 2)
            assert passes.count == 2
            passes.recheck = 0.2  # a deadline ahead: looked at again without a wake
            context.wakeups.wake(key)
            await settle(passes, 4, timeout=2)
            passes.recheck = None
            await settle(passes, 5, timeout=2)
            count = passes.count
            await asyncio.sleep(0.5)
            assert passes.count == count  # nothing asked for another look
            passes.fail = RuntimeError("boom")  # failures retry after 1 s, 2 s, ...
            context.wakeups.wake(key)
            await settle(passes, count + 2, timeout=3)
            loop.cancel()
            with pytest.raises(asyncio.CancelledError):
                await loop
        assert not context.wakeups.wake(key)  # a stopped loop is forgotten

    asyncio.run(scenario())


def test_passes_of_one_kind_never_take_every_thread() -> None:
    """Projects stuck on a slow Label Studio hold at most PASSES_PER_KIND threads; a
    FineTuneJob's pass still runs."""
    from labelloop.api import ANNOTATION_PROJECT, FINE_TUNE_JOB

    running, most = 0, 0
    lock, release = threading.Lock(), threading.Event()

    def stuck(**_: Any) -> None:
        nonlocal running, most
        with lock:
            running += 1
            most = max(most, running)
        release.wait(10)
        with lock:
            running -= 1

    async def scenario() -> None:
        context = Context(resync=3600)
        memo = kopf.Memo(context=context)
        job = Passes()
        with ThreadPoolExecutor(16) as pool:
            loops = [
                asyncio.create_task(
                    driver.reconcile_loop(
                        ANNOTATION_PROJECT,
                        stuck,
                        kopf.Body({"metadata": {"name": f"p{i}", "namespace": "ml"}}),
                        memo,
                        pool,
                        stopped=asyncio.Event(),
                    )
                )
                for i in range(12)
            ]
            await asyncio.sleep(0.5)
            loops.append(
                asyncio.create_task(
                    driver.reconcile_loop(
                        FINE_TUNE_JOB,
                        job,
                        kopf.Body({"metadata": {"name": "r1", "namespace": "ml"}}),
                        memo,
                        pool,
                        stopped=asyncio.Event(),
                    )
                )
            )
            await settle(job, 1)
            assert most == driver.PASSES_PER_KIND
            release.set()
            await asyncio.sleep(0.2)
            for loop in loops:
                loop.cancel()
            await asyncio.gather(*loops, return_exceptions=True)

    asyncio.run(scenario())


def test_a_stopped_loop_ends_at_once_without_being_cancelled() -> None:
    """kopf sets `stopped` when the object goes or stops matching (a finished FineTuneJob); the
    loop returns on its own instead of waiting out its resync until kopf cancels it."""
    from labelloop.api import FINE_TUNE_JOB

    async def scenario() -> None:
        passes, context = Passes(), Context(resync=3600)
        body = kopf.Body({"metadata": {"name": "r1", "namespace": "ml", "resourceVersion": "1"}})
        stopped = asyncio.Event()
        with ThreadPoolExecutor(2) as pool:
            loop = asyncio.create_task(
                driver.reconcile_loop(
                    FINE_TUNE_JOB, passes, body, kopf.Memo(context=context), pool, stopped=stopped
                )
            )
            await settle(passes, 1)
            stopped.set()
            await asyncio.wait_for(loop, timeout=1)  # returns; a cancellation would raise
        assert passes.count == 1
        assert not context.wakeups.wake(ObjectKey(FINE_TUNE_JOB.kind, "ml", "r1"))

    asyncio.run(scenario())


def test_a_loop_stopped_while_queued_for_a_slot_leaves_the_queue_and_takes_no_slot() -> None:
    """Hundreds of loops can wait for one of a kind's slots; one that kopf stops meanwhile
    (its FineTuneJob finished) ends at once, and the slots stay as many as before."""
    from labelloop.api import FINE_TUNE_JOB

    async def scenario() -> None:
        context = Context(resync=3600)
        slots = context.pass_slots.setdefault(
            FINE_TUNE_JOB.kind, asyncio.Semaphore(driver.PASSES_PER_KIND)
        )
        for _ in range(driver.PASSES_PER_KIND):  # every slot busy
            await slots.acquire()
        passes, stopped = Passes(), asyncio.Event()
        body = kopf.Body({"metadata": {"name": "r1", "namespace": "ml", "resourceVersion": "1"}})
        with ThreadPoolExecutor(2) as pool:
            loop = asyncio.create_task(
                driver.reconcile_loop(
                    FINE_TUNE_JOB, passes, body, kopf.Memo(context=context), pool, stopped=stopped
                )
            )
            await asyncio.sleep(0.2)
            stopped.set()
            await asyncio.wait_for(loop, timeout=1)
        assert passes.count == 0
        assert slots.locked()  # still all taken by their holders, none given back twice
        for _ in range(driver.PASSES_PER_KIND):
            slots.release()
        assert not slots.locked()
        assert await asyncio.wait_for(slots.acquire(), 0.1)

    asyncio.run(scenario())
