"""Record futures: kafka-python's and concurrent.futures' interfaces over one batch result."""

from __future__ import annotations

import logging
import threading
import time

import pytest

from streamlet.errors import Throttled, TopicNotFound
from streamlet.futures import BatchResult, RecordFuture
from streamlet.records import RecordMetadata, TimestampType, TopicPartition

TP = TopicPartition("orders", 3)


def futures(count: int = 3) -> tuple[BatchResult, list[RecordFuture]]:
    batch = BatchResult(TP)
    return batch, [RecordFuture(batch, i, 1_000 + i) for i in range(count)]


def test_each_record_resolves_to_its_own_offset_and_create_time() -> None:
    batch, records = futures()
    assert not any(f.done() or f.is_done for f in records)
    batch.succeed(base_offset=40, log_append_time=-1)
    assert [f.get() for f in records] == [
        RecordMetadata("orders", 3, 40 + i, 1_000 + i, TimestampType.CREATE_TIME)
        for i in range(3)]
    assert all(f.succeeded() and not f.failed() and f.exception() is None for f in records)
    assert records[1].value == records[1].result(timeout=0)


def test_log_append_time_replaces_every_record_timestamp() -> None:
    batch, records = futures()
    batch.succeed(base_offset=0, log_append_time=1_700_000_000_000)
    assert {(f.get().timestamp, f.get().timestamp_type) for f in records} == {
        (1_700_000_000_000, TimestampType.LOG_APPEND_TIME)}


def test_a_failed_batch_fails_every_record() -> None:
    batch, records = futures()
    error = TopicNotFound("orders")
    batch.fail(error)
    for future in records:
        assert future.failed() and not future.succeeded() and future.value is None
        assert future.exception() is error
        with pytest.raises(TopicNotFound):
            future.get()
        with pytest.raises(TopicNotFound):
            future.result(timeout=1)


def test_the_first_resolution_wins() -> None:
    batch, (future, *_) = futures()
    batch.succeed(7, -1)
    batch.fail(Throttled("late"))
    batch.succeed(99, -1)
    assert future.get().offset == 7


def test_callbacks_chain_and_receive_args_first_as_kafka_python_does() -> None:
    batch, (ok, *_) = futures()
    seen: list[object] = []
    returned = (ok.add_callback(seen.append)
                .add_callback(lambda tag, meta: seen.append((tag, meta.offset)), "tagged")
                .add_errback(seen.append))
    assert returned is ok and seen == []
    batch.succeed(10, -1)
    assert seen == [ok.get(), ("tagged", 10)]  # the errback never ran


def test_errbacks_receive_the_error() -> None:
    batch, (bad, *_) = futures()
    seen: list[object] = []
    bad.add_errback(lambda where, e: seen.append((where, e)), "here").add_callback(seen.append)
    error = Throttled("slow down")
    batch.fail(error)
    assert seen == [("here", error)]


def test_callbacks_added_after_resolution_run_at_once() -> None:
    batch, (future, *_) = futures()
    batch.succeed(5, -1)
    seen: list[object] = []
    future.add_callback(lambda meta: seen.append(meta.offset))
    future.add_both(seen.append)
    future.add_done_callback(seen.append)
    assert seen == [5, future.get(), future]


def test_add_done_callback_gets_the_future_on_success_and_failure() -> None:
    batch, (future, *_) = futures()
    seen: list[RecordFuture] = []
    future.add_done_callback(seen.append)
    batch.fail(Throttled("x"))
    assert seen == [future]


def test_a_raising_callback_is_logged_and_the_others_still_run(
        caplog: pytest.LogCaptureFixture) -> None:
    batch, (future, *_) = futures()
    seen: list[int] = []

    def boom(meta: RecordMetadata) -> None:
        raise ValueError("user bug")

    future.add_callback(boom).add_callback(lambda meta: seen.append(meta.offset))
    with caplog.at_level(logging.ERROR, logger="streamlet.producer"):
        batch.succeed(3, -1)
    assert seen == [3]
    assert "callback raised" in caplog.text


def test_waiting_with_a_timeout_raises_timeout_error_while_pending() -> None:
    _, (future, *_) = futures()
    for wait in (future.get, future.result, future.exception):
        started = time.monotonic()
        with pytest.raises(TimeoutError, match=r"not acknowledged within 0\.05 s"):
            wait(0.05)
        assert time.monotonic() - started >= 0.05
    assert not future.cancel() and not future.cancelled() and future.running()


def test_a_waiting_thread_wakes_when_the_batch_resolves() -> None:
    batch, (future, *_) = futures()
    got: list[int] = []
    waiter = threading.Thread(target=lambda: got.append(future.get(timeout=10).offset))
    waiter.start()
    time.sleep(0.05)
    batch.succeed(21, -1)
    waiter.join(timeout=10)
    assert got == [21]


def test_nothing_to_wait_on_is_created_unless_someone_waits() -> None:
    batch, records = futures(1000)
    batch.succeed(0, -1)
    assert records[-1].get(timeout=0).offset == 999
    assert batch._event is None and batch._callbacks is None


def test_repr_says_where_and_how_it_stands() -> None:
    batch, (future, *_) = futures()
    assert repr(future) == "<RecordFuture orders[3] pending>"
    batch.fail(Throttled("x"))
    assert repr(future) == "<RecordFuture orders[3] failed>"
