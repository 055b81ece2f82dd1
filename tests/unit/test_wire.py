"""One wire module, one error registry: every /v1 shape and every error class round-trips."""

from __future__ import annotations

import inspect
import json

import pytest

import streamlet
from streamlet import errors, wire
from streamlet.errors import StreamletError, error_classes
from streamlet.groups.leases import GroupSnapshot, Lease, Member
from streamlet.records import (
    AppendResult,
    ArchiveReport,
    RetentionReport,
    SegmentInfo,
    TopicDescription,
    TopicPartition,
)

TP = TopicPartition("orders.v1", 7)


def through_json(data: object) -> dict[str, object]:
    loaded: dict[str, object] = json.loads(json.dumps(data))
    return loaded


def test_log_shapes_round_trip() -> None:
    result = AppendResult(10, 19, 1_700_000_000_000, 3, duplicate=True)
    assert wire.append_from_json(through_json(wire.append_json(result))) == result
    meta = TopicDescription("orders.v1", "id-1", 6, {"retention.ms": "1000"})
    assert wire.topic_from_json(through_json(wire.topic_json(meta))) == meta
    assert wire.watermarks_from_json(through_json(wire.watermarks_json(4, 9))) == (4, 9)
    assert wire.offset_from_json(through_json(wire.offset_json(None))) is None
    assert wire.offset_from_json(through_json(wire.offset_json(12))) == 12


def test_report_shapes_round_trip() -> None:
    segment = SegmentInfo("segments/x/0/0.seg", 0, 99, 4096, 1_700_000_000_000, 1_699_000_000_000)
    archived = [ArchiveReport("t", 0, [segment], 2, 100, 120, 5)]
    assert wire.archive_reports_from_json(through_json(wire.reports_json(archived))) == archived
    expired = [RetentionReport("t", 1, 0, 100, 2)]
    assert wire.retention_reports_from_json(through_json(wire.reports_json(expired))) == expired


def test_group_shapes_round_trip() -> None:
    lease = Lease(TP, "m-1", 4, 120, "meta", 1_700_000_000_000)
    member = Member("m-1", 9, "client", "host", "inst", ("a", "b"), 1000, 30_000)
    snapshot = GroupSnapshot({TP: lease, TopicPartition("x", 0): Lease(
        TopicPartition("x", 0), None, 0, None)}, {"m-1": member})
    assert wire.lease_from_json(through_json(wire.lease_json(lease))) == lease
    assert wire.member_from_json(through_json(wire.member_json(member))) == member
    assert wire.snapshot_from_json(through_json(wire.snapshot_json(snapshot))) == snapshot


def _sdk_error_classes() -> list[type[StreamletError]]:
    """Every error class that goes on the wire (shared bases without a code do not)."""
    return [c for _, c in inspect.getmembers(errors, inspect.isclass)
            if issubclass(c, StreamletError) and "code" in c.__dict__]


def test_every_error_class_registers_itself_under_a_unique_code() -> None:
    registry = error_classes()
    for cls in _sdk_error_classes():
        assert registry[cls.code] is cls


def test_a_second_class_with_a_taken_code_is_refused() -> None:
    with pytest.raises(TypeError, match="topic_not_found"):
        type("Impostor", (StreamletError,), {"code": "topic_not_found"})


@pytest.mark.parametrize("cls", _sdk_error_classes(), ids=lambda c: c.__name__)
def test_every_error_comes_back_from_the_wire_as_its_own_class(cls: type[StreamletError]
                                                                ) -> None:
    body = {"error_code": cls.error_code, "message": "server says", "code": cls.code}
    error = StreamletError.from_wire(cls.status, through_json(body))
    assert type(error) is cls and error.message == "server says"
    assert error.retriable is cls.retriable


@pytest.mark.parametrize(("status", "expected"), [
    (429, errors.Throttled), (502, errors.RequestTimedOut), (403, errors.AccessDenied),
    (413, errors.RecordTooLarge), (400, errors.InvalidRequest)])
def test_bodies_without_a_known_code_fall_back_to_the_status(status: int,
                                                              expected: type) -> None:
    assert type(StreamletError.from_wire(status, {"message": "?"})) is expected


def test_access_denied_is_part_of_the_public_surface() -> None:
    assert streamlet.AccessDenied is errors.AccessDenied
    assert "AccessDenied" in streamlet.__all__


def test_every_public_error_class_is_exported() -> None:
    """What a user may catch is importable from ``streamlet`` itself."""
    public = {name for name, value in vars(errors).items() if isinstance(value, type)
              and issubclass(value, StreamletError) and not name.startswith("_")}
    assert public <= set(streamlet.__all__), public - set(streamlet.__all__)
