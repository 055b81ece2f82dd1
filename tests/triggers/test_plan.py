"""The delivery plan, pure: batches, window, retries, bisection, partial responses, age."""

from __future__ import annotations

from typing import Any

import pytest

from streamlet.errors import InvalidConfig
from streamlet.records import Record
from streamlet.triggers.config import KeyFilter, TopicDestination, Trigger
from streamlet.triggers.event import Answer, failed
from streamlet.triggers.plan import DeadLetter, Failing, Fetch, Invoke, Plan, Skip, Wait


def records(n: int, start: int = 0, ts: int = 1_000, key: bytes | None = None) -> list[Record]:
    return [Record("orders", 0, i, key, f"v{i}".encode(), [], ts) for i in range(start, start + n)]


def trigger(**settings: Any) -> Trigger:
    return Trigger("t", "orders", function="f", **{"maximum_batching_window_ms": 0, **settings})


def run(plan: Plan, invoke: Any, now_ms: int = 1_000, limit: int = 100) -> list[Any]:
    """Drive the plan to the end; ``invoke(records) -> Answer``; returns the steps."""
    steps = []
    for _ in range(limit):
        step = plan.next(now_ms)
        if step is None:
            return steps
        steps.append(step)
        if isinstance(step, Invoke):
            answer = invoke(step.records)
            if answer.ok:
                plan.committed(step.commit)
            elif (done := plan.failed(step, answer)) is not None:
                plan.committed(done)
        elif isinstance(step, DeadLetter | Skip):
            plan.committed(step.commit)
        else:
            raise AssertionError(step)
    raise AssertionError("the plan did not finish")


def offsets(step: Invoke | DeadLetter) -> list[int]:
    return [r.offset for r in step.records]


def test_batches_follow_batch_size_and_commit_after_each() -> None:
    plan = Plan(trigger(batch_size=4), position=0)
    plan.feed(records(10), caught_up=True)
    steps = run(plan, lambda batch: Answer())
    assert [offsets(s) for s in steps] == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]]
    assert [s.commit for s in steps] == [4, 8, 10]
    assert plan.position == 10


def test_a_short_batch_fetches_more_before_the_window_applies() -> None:
    plan = Plan(trigger(batch_size=4, maximum_batching_window_ms=500), position=0)
    assert plan.next(1_000) == Fetch(0)
    plan.feed(records(2), caught_up=False)
    assert plan.next(1_000) == Fetch(2)
    plan.feed([], caught_up=True)
    assert plan.next(1_200) == Wait(300)  # the first record (ts 1000) is 200 ms old
    plan.stale()
    assert plan.next(1_500) == Fetch(2)
    plan.feed([], caught_up=True)
    step = plan.next(1_500)
    assert isinstance(step, Invoke) and offsets(step) == [0, 1]


def test_a_full_batch_never_waits() -> None:
    plan = Plan(trigger(batch_size=2, maximum_batching_window_ms=300_000), position=0)
    plan.feed(records(2), caught_up=True)
    assert isinstance(plan.next(1_000), Invoke)


def test_the_payload_limit_cuts_batches() -> None:
    plan = Plan(trigger(batch_size=100), position=0, max_bytes=1_500)
    big = [Record("orders", 0, i, None, b"x" * 300, [], 1_000) for i in range(5)]
    plan.feed(big, caught_up=True)
    steps = run(plan, lambda batch: Answer())
    assert [len(s.records) for s in steps] == [2, 2, 1]


def test_retries_then_dead_letters_the_whole_batch_without_bisection() -> None:
    plan = Plan(trigger(batch_size=3, maximum_retry_attempts=2), position=0)
    plan.feed(records(6), caught_up=True)
    calls: list[list[int]] = []

    def invoke(batch: list[Record]) -> Answer:
        calls.append([r.offset for r in batch])
        return failed(batch, "boom") if batch[0].offset == 0 else Answer()

    steps = run(plan, invoke)
    assert calls == [[0, 1, 2]] * 3 + [[3, 4, 5]]
    dead = [s for s in steps if isinstance(s, DeadLetter)]
    assert [offsets(d) for d in dead] == [[0, 1, 2]] and dead[0].attempts == 3
    assert dead[0].error == "boom" and plan.position == 6


def test_bisection_isolates_the_poison_record_and_splits_cost_no_attempt() -> None:
    plan = Plan(trigger(batch_size=8, bisect_batch_on_function_error=True,
                        maximum_retry_attempts=1), position=0)
    plan.feed(records(8), caught_up=True)
    calls: list[list[int]] = []

    def invoke(batch: list[Record]) -> Answer:
        calls.append([r.offset for r in batch])
        return failed(batch, "poison") if any(r.offset == 5 for r in batch) else Answer()

    steps = run(plan, invoke)
    assert calls == [[0, 1, 2, 3, 4, 5, 6, 7], [0, 1, 2, 3], [4, 5, 6, 7], [4, 5], [4],
                     [5], [5], [6, 7]]
    dead = [s for s in steps if isinstance(s, DeadLetter)]
    assert [offsets(d) for d in dead] == [[5]] and dead[0].attempts == 2
    assert plan.position == 8


def test_a_partial_response_commits_before_the_failed_record_and_retries_the_rest() -> None:
    plan = Plan(trigger(batch_size=5, report_batch_item_failures=True,
                        maximum_retry_attempts=0), position=0)
    plan.feed(records(5), caught_up=True)
    calls: list[list[int]] = []

    def invoke(batch: list[Record]) -> Answer:
        calls.append([r.offset for r in batch])
        return Answer(3, "record 3 failed") if 3 in calls[-1] else Answer()

    steps = run(plan, invoke)
    assert calls == [[0, 1, 2, 3, 4]]
    assert [offsets(s) for s in steps if isinstance(s, DeadLetter)] == [[3, 4]]


def test_partial_failures_count_attempts_even_with_bisection() -> None:
    plan = Plan(trigger(batch_size=4, report_batch_item_failures=True,
                        bisect_batch_on_function_error=True, maximum_retry_attempts=1),
                position=0)
    plan.feed(records(4), caught_up=True)
    calls: list[list[int]] = []

    def invoke(batch: list[Record]) -> Answer:
        calls.append([r.offset for r in batch])
        return Answer(1, "one") if batch[0].offset <= 1 else Answer()

    steps = run(plan, invoke)
    assert calls == [[0, 1, 2, 3], [1, 2, 3]]
    assert [offsets(s) for s in steps if isinstance(s, DeadLetter)] == [[1, 2, 3]]


def test_unlimited_retries_with_a_destination_become_ten() -> None:
    assert trigger(on_failure=TopicDestination("dlq")).retry_limit == 10
    assert trigger().retry_limit is None
    assert trigger(maximum_retry_attempts=0).retry_limit == 0


def test_records_too_old_at_the_head_go_to_the_destination_uninvoked() -> None:
    plan = Plan(trigger(batch_size=10, maximum_record_age_s=60), position=0)
    old = records(3, ts=0)
    fresh = records(2, start=3, ts=100_000)
    plan.feed(old + fresh, caught_up=True)
    steps = run(plan, lambda batch: Answer(), now_ms=100_000)
    assert isinstance(steps[0], DeadLetter) and offsets(steps[0]) == [0, 1, 2]
    assert "maximum_record_age_s=60" in steps[0].error
    assert isinstance(steps[1], Invoke) and offsets(steps[1]) == [3, 4]


def test_the_key_filter_skips_records_and_commits_past_them() -> None:
    plan = Plan(trigger(batch_size=10, key_filter="user-*"), position=0)
    mixed = [Record("orders", 0, i, b"user-1" if i % 2 else b"admin", b"v", [], 1_000)
             for i in range(6)]
    plan.feed(mixed + records(2, start=6, key=b"other"), caught_up=True)
    steps = run(plan, lambda batch: Answer())
    assert offsets(steps[0]) == [1, 3, 5] and steps[0].commit == 8
    assert plan.position == 8


def test_only_filtered_records_are_a_skip() -> None:
    plan = Plan(trigger(key_filter="nobody"), position=0)
    plan.feed(records(3, key=b"x"), caught_up=True)
    assert plan.next(1_000) == Skip(3)


def test_a_pinned_batch_is_delivered_exactly_as_first_tried() -> None:
    plan = Plan(trigger(batch_size=100), position=2, pinned=(2, 5))
    assert plan.next(1_000) == Fetch(2)
    plan.feed(records(8, start=2), caught_up=True)
    step = plan.next(1_000)
    assert isinstance(step, Invoke) and offsets(step) == [2, 3, 4] and step.commit == 5
    plan.committed(5)
    assert plan.pinned is None


def test_a_failing_batch_remembered_from_an_earlier_session_keeps_counting() -> None:
    plan = Plan(trigger(batch_size=2, maximum_retry_attempts=1), position=4,
                failing=Failing(4, 2))
    plan.feed(records(2, start=4), caught_up=True)
    step = plan.next(1_000)
    assert isinstance(step, DeadLetter) and offsets(step) == [4, 5]
    assert Failing.decode(Failing(4, 2).encode()) == Failing(4, 2)


def test_key_filter_parsing() -> None:
    assert KeyFilter.parse("a,b*").matches(b"bcd")
    with pytest.raises(InvalidConfig):
        KeyFilter.parse(",")


@pytest.mark.parametrize("settings", [
    {"batch_size": 0}, {"batch_size": 10_001}, {"maximum_batching_window_ms": 300_001},
    {"maximum_retry_attempts": -2}, {"maximum_record_age_s": 59},
    {"starting_position": "AT_TIMESTAMP"}, {"starting_position_timestamp_ms": 5},
    {"on_failure": TopicDestination("orders")}, {"batch_size": True},
])
def test_settings_out_of_lambdas_ranges_are_refused(settings: dict[str, Any]) -> None:
    with pytest.raises((InvalidConfig, ValueError)):
        trigger(**settings)


def test_a_trigger_round_trips_through_json() -> None:
    original = trigger(batch_size=7, starting_position="AT_TIMESTAMP",
                       starting_position_timestamp_ms=5, on_failure=TopicDestination("dlq"),
                       key_filter="a*")
    assert Trigger.from_json(original.to_json()) == original
    with pytest.raises(InvalidConfig):
        Trigger.from_json({**original.to_json(), "surprise": 1})
