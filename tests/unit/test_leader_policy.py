"""Leader election (labelloop.leader): its decisions by table and in simulated time, its flags,
and the EndpointSlice that routes the operator's Service to the leader."""

from __future__ import annotations

import argparse
import json
import re
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from kubernetes.client.exceptions import ApiException

from labelloop.cli import _election, build_parser
from labelloop.leader.lease import describe
from labelloop.leader.policy import (
    DEFAULT_LEASE_NAME,
    LeaseRecord,
    Move,
    Sighting,
    Timing,
    claimed,
    identity,
    micro_time,
    next_move,
    pod_of,
    released,
    renewal_overdue,
    sight,
)
from labelloop.leader.route import endpoint_slice

ME, OTHER = "operator-a_1111", "operator-b_2222"
T0 = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)


def seen(holder: str, since: float = 0.0, duration: int | None = 15) -> Sighting:
    return Sighting(LeaseRecord(version="7", holder=holder, duration=duration), since)


@pytest.mark.parametrize(
    ("sighting", "now", "leading", "move"),
    [
        # No Lease yet: a standby creates it; a leader whose Lease vanished stops.
        (None, 0.0, False, Move.CREATE),
        (None, 0.0, True, Move.STEP_DOWN),
        # Its own: renew, also when the answer to its winning write was lost.
        (seen(ME), 100.0, True, Move.RENEW),
        (seen(ME), 100.0, False, Move.RENEW),
        # Released: taken at once.
        (seen(""), 0.0, False, Move.TAKE_OVER),
        # Another's: wait until that version has stood unchanged for its duration.
        (seen(OTHER), 14.9, False, Move.WAIT),
        (seen(OTHER), 15.0, False, Move.TAKE_OVER),
        (seen(OTHER, since=10.0), 24.9, False, Move.WAIT),
        (seen(OTHER, since=10.0), 25.0, False, Move.TAKE_OVER),
        # The holder's declared duration counts, not the candidate's own.
        (seen(OTHER, duration=30), 20.0, False, Move.WAIT),
        (seen(OTHER, duration=30), 30.0, False, Move.TAKE_OVER),
        (seen(OTHER, duration=None), 14.9, False, Move.WAIT),
        (seen(OTHER, duration=None), 15.0, False, Move.TAKE_OVER),
        # A leader that finds another holder, or none, has lost: it never takes back.
        (seen(OTHER), 0.0, True, Move.STEP_DOWN),
        (seen(OTHER), 100.0, True, Move.STEP_DOWN),
        (seen(""), 0.0, True, Move.STEP_DOWN),
    ],
)
def test_next_move(sighting: Sighting | None, now: float, leading: bool, move: Move) -> None:
    assert next_move(sighting, ME, now, leading=leading, lease_duration=15) is move


def test_a_version_is_timed_from_when_it_was_first_seen() -> None:
    first = sight(None, LeaseRecord("1", OTHER), now=5.0)
    assert first == Sighting(LeaseRecord("1", OTHER), 5.0)
    # Read again unchanged: the clock keeps running from the first sighting.
    assert sight(first, LeaseRecord("1", OTHER), now=9.0) is first
    # A renewal (a new version): timed afresh.
    assert sight(first, LeaseRecord("2", OTHER), now=9.0) == Sighting(LeaseRecord("2", OTHER), 9.0)
    assert sight(first, None, now=9.0) is None


@pytest.mark.parametrize(
    ("now", "overdue"), [(0.0, False), (9.99, False), (10.0, True), (60.0, True)]
)
def test_renewal_overdue(now: float, overdue: bool) -> None:
    assert renewal_overdue(0.0, now, renew_deadline=10.0) is overdue


def standby_takes_over_at(last_renewal: float, timing: Timing, poll_offset: float) -> float:
    """Simulated time: a leader renews every retry period until `last_renewal` (each renewal a
    new version), then dies; a standby polls every retry period from `poll_offset`. Returns
    when the standby takes over."""
    sighting, now = None, poll_offset
    while True:
        renewals = int(min(now, last_renewal) // timing.retry_period)
        record = LeaseRecord(version=str(renewals), holder=OTHER, duration=timing.lease_duration)
        sighting = sight(sighting, record, now)
        move = next_move(sighting, ME, now, leading=False, lease_duration=timing.lease_duration)
        if move is Move.TAKE_OVER:
            return now
        assert move is Move.WAIT
        now += timing.retry_period


@pytest.mark.parametrize("poll_offset", [0.0, 0.5, 1.0, 1.99])
@pytest.mark.parametrize("last_renewal", [0.0, 20.0, 21.0, 300.0])
def test_a_standby_takes_over_within_a_bounded_time_and_never_from_a_live_leader(
    last_renewal: float, poll_offset: float
) -> None:
    timing = Timing()
    taken = standby_takes_over_at(last_renewal, timing, poll_offset)
    # Never while the leader still renews, or within its renew deadline...
    assert taken >= last_renewal + timing.lease_duration
    assert taken > last_renewal + timing.renew_deadline
    # ...and no later than a lease duration after the standby saw the last renewal, which
    # it sees at its next poll: 15 + 2 + 2 seconds with the defaults.
    assert taken <= last_renewal + timing.lease_duration + 2 * timing.retry_period


def test_a_standby_that_starts_late_still_waits_a_full_lease_duration() -> None:
    # It cannot tell how old the version is (clocks are never compared): it times it itself.
    timing = Timing()
    taken = standby_takes_over_at(0.0, timing, poll_offset=500.0)
    assert 500.0 + timing.lease_duration <= taken < 500.0 + timing.lease_duration + 2


def test_creating_the_lease_holds_it_from_now() -> None:
    assert claimed(None, ME, T0, 15) == {
        "holderIdentity": ME,
        "leaseDurationSeconds": 15,
        "acquireTime": "2026-12-01T12:00:00.000000Z",
        "renewTime": "2026-12-01T12:00:00.000000Z",
        "leaseTransitions": 0,
    }


def test_renewing_keeps_the_acquire_time_and_the_transitions() -> None:
    mine = LeaseRecord("9", ME, 15, acquired=T0, transitions=3)
    spec = claimed(mine, ME, T0 + timedelta(seconds=42), 15)
    assert spec["acquireTime"] == "2026-12-01T12:00:00.000000Z"
    assert spec["renewTime"] == "2026-12-01T12:00:42.000000Z"
    assert (spec["holderIdentity"], spec["leaseTransitions"]) == (ME, 3)


@pytest.mark.parametrize("previous_holder", [OTHER, ""])
def test_taking_over_counts_a_transition_and_starts_a_new_tenure(previous_holder: str) -> None:
    theirs = LeaseRecord("9", previous_holder, 15, acquired=T0, transitions=3)
    later = T0 + timedelta(minutes=5)
    spec = claimed(theirs, ME, later, 20)
    assert spec == {
        "holderIdentity": ME,
        "leaseDurationSeconds": 20,
        "acquireTime": "2026-12-01T12:05:00.000000Z",
        "renewTime": "2026-12-01T12:05:00.000000Z",
        "leaseTransitions": 4,
    }


def test_releasing_leaves_no_holder_and_a_one_second_lease() -> None:
    mine = LeaseRecord("9", ME, 15, acquired=T0, transitions=3)
    assert released(mine, T0) == {
        "holderIdentity": "",
        "leaseDurationSeconds": 1,
        "acquireTime": "2026-12-01T12:00:00.000000Z",
        "renewTime": "2026-12-01T12:00:00.000000Z",
        "leaseTransitions": 3,
    }
    # A standby that reads it takes it at once.
    assert (
        next_move(
            Sighting(LeaseRecord("10", ""), 0.0), OTHER, 0.0, leading=False, lease_duration=15
        )
        is Move.TAKE_OVER
    )


@pytest.mark.parametrize(
    ("moment", "text"),
    [
        (datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC), "2026-01-02T03:04:05.000000Z"),
        (datetime(2026, 1, 2, 3, 4, 5, 7, tzinfo=UTC), "2026-01-02T03:04:05.000007Z"),
        (
            datetime(2026, 1, 2, 5, 4, 5, 123456, tzinfo=timezone(timedelta(hours=2))),
            "2026-01-02T03:04:05.123456Z",
        ),
    ],
)
def test_micro_time_is_utc_with_six_fractional_digits(moment: datetime, text: str) -> None:
    assert micro_time(moment) == text


def test_the_holder_names_its_pod() -> None:
    holder = identity("labelloop-7d9f8c6b5-x2k4q", "0a1b2c3d")
    assert holder == "labelloop-7d9f8c6b5-x2k4q_0a1b2c3d"
    assert pod_of(holder) == "labelloop-7d9f8c6b5-x2k4q"
    assert pod_of("written-by-someone-else") == "written-by-someone-else"


@pytest.mark.parametrize(
    ("timing", "complaint"),
    [
        ({"retry_period": 0}, "retry_period must be positive"),
        ({"renew_deadline": 2.0}, "renew_deadline (2s) must be longer than retry_period (2s)"),
        ({"lease_duration": 10}, "lease_duration (10s) must be longer than renew_deadline (10s)"),
        ({"lease_duration": 5, "renew_deadline": 8}, "lease_duration (5s)"),
    ],
)
def test_timings_that_could_make_two_leaders_are_refused(
    timing: dict[str, Any], complaint: str
) -> None:
    with pytest.raises(ValueError, match=re.escape(complaint)):
        Timing(**timing)


def operator_args(*flags: str) -> argparse.Namespace:
    return build_parser().parse_args(["operator", *flags])


def test_without_the_flag_there_is_no_election() -> None:
    assert _election(operator_args()) is None


def test_the_flags_make_an_election_named_after_the_pod(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("POD_NAME", "labelloop-7d9f8c6b5-x2k4q")
    election = _election(
        operator_args("--leader-election", "--leader-election-namespace=ops", "--lease-duration=20")
    )
    assert election is not None
    assert (election.namespace, election.name) == ("ops", DEFAULT_LEASE_NAME)
    assert election.timing == Timing(lease_duration=20)
    assert pod_of(election.identity) == "labelloop-7d9f8c6b5-x2k4q"
    # Each process is a new candidate, even in the same pod.
    again = _election(operator_args("--leader-election", "--leader-election-namespace=ops"))
    assert again is not None and again.identity != election.identity


def test_the_service_follows_the_pod_that_leads(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("POD_NAME", "labelloop-7d9f8c6b5-x2k4q")
    monkeypatch.setenv("POD_IP", "10.244.1.7")
    flags = ["--leader-election", "--leader-election-namespace=ops", "--leader-service=labelloop"]
    election = _election(operator_args(*flags))
    assert election is not None
    assert (election.service, election.pod_ip) == ("labelloop", "10.244.1.7")
    monkeypatch.delenv("POD_IP")
    with pytest.raises(ValueError, match=re.escape("needs this pod's address ($POD_IP)")):
        _election(operator_args(*flags))


@pytest.mark.parametrize(("pod_ip", "family"), [("10.244.1.7", "IPv4"), ("fd00:10:244::7", "IPv6")])
def test_the_endpoint_slice_names_the_leading_pod_on_the_services_ports(
    pod_ip: str, family: str
) -> None:
    manifest = endpoint_slice(
        "ops", "labelloop", "labelloop-x2k4q", pod_ip, {"webhook": 8081, "metrics": 8000}
    )
    assert manifest == {
        "apiVersion": "discovery.k8s.io/v1",
        "kind": "EndpointSlice",
        "metadata": {
            "name": "labelloop",
            "namespace": "ops",
            # kube-proxy finds it by the first; the second keeps the EndpointSlice controller
            # from adopting (and deleting) it.
            "labels": {
                "kubernetes.io/service-name": "labelloop",
                "endpointslice.kubernetes.io/managed-by": "leader.labelloop.io",
            },
        },
        "addressType": family,
        "endpoints": [
            {
                "addresses": [pod_ip],
                "conditions": {"ready": True},
                "targetRef": {"kind": "Pod", "name": "labelloop-x2k4q", "namespace": "ops"},
            }
        ],
        "ports": [
            {"name": "metrics", "port": 8000, "protocol": "TCP"},
            {"name": "webhook", "port": 8081, "protocol": "TCP"},
        ],
    }


@pytest.mark.parametrize(
    ("flags", "complaint"),
    [
        (["--leader-election"], "--leader-election needs --leader-election-namespace"),
        (["--leader-service=labelloop"], "--leader-service needs --leader-election"),
        (
            ["--leader-election", "--leader-election-namespace=ops", "--renew-deadline=20"],
            "lease_duration (15s) must be longer than renew_deadline (20s)",
        ),
    ],
)
def test_bad_election_flags_are_named(
    flags: list[str], complaint: str, capsys: pytest.CaptureFixture[str]
) -> None:
    args = operator_args(*flags)
    assert args.run(args) == 2
    assert complaint in capsys.readouterr().err


def test_api_errors_are_logged_in_one_line_without_headers() -> None:
    refused = ApiException(status=422, reason="Unprocessable Entity")
    refused.body = json.dumps({"kind": "Status", "message": 'EndpointSlice "x" is invalid'})
    refused.headers = {"Audit-Id": "0000"}
    assert describe(refused) == '422 Unprocessable Entity: EndpointSlice "x" is invalid'
    assert describe(TimeoutError("timed out")) == "timed out"
    assert describe(TimeoutError()) == "TimeoutError"


def test_everything_that_acts_starts_with_kopf_and_so_only_on_the_leader() -> None:
    """`operator.run` starts kopf only once it holds the Lease: the webhook receiver and the
    Label Studio poller are kopf start-up activities, the reconcile loops kopf daemons."""
    import kopf

    from labelloop import controllers

    assert controllers  # registers them
    registry = kopf.get_default_registry()
    activities = {getattr(h.fn, "__name__", "") for h in registry._activities.get_all_handlers()}
    assert {"start_receiver", "start_polling"} <= activities
    assert registry._spawning.get_all_handlers(), "the reconcile loops are kopf daemons"
