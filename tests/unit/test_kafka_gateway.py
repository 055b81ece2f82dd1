"""The Kafka gateway's pure parts: which produced batches may be retries, the group state
machine's steps, error codes, and tokens' shape."""

from __future__ import annotations

from typing import Any

import pytest

from streamlet.engine.kafka_groups import ClassicGroup, ClassicMember
from streamlet.errors import (
    AppendConflict,
    CorruptRecord,
    OutOfOrderSequence,
    ProducerFenced,
    TopicNotFound,
)
from streamlet.kafka import codes
from streamlet.kafka.auth import Authenticator, PlainVerifier, oauth_token
from streamlet.kafka.coordinator import (
    COMPLETING,
    EMPTY,
    PREPARING,
    Coordinator,
    _common_protocol,
)
from streamlet.kafka.data import ProducerMemory, _Appended
from streamlet.records import AppendResult


def _appended(epoch: int, sequence: int, count: int, base: int) -> _Appended:
    return _Appended(epoch, sequence, count, AppendResult(base, base + count - 1, -1, 0))


def test_producer_memory_tells_duplicates_next_batches_and_unknowns_apart() -> None:
    memory, key = ProducerMemory(), (7, "orders", 0)
    assert memory.classify(key, 0, 0) is False  # never seen: may be a retry (look back)
    memory.record(key, _appended(0, 0, 10, 100))
    memory.record(key, _appended(0, 10, 5, 110))
    assert memory.classify(key, 0, 15) is True  # the next one: append as is
    duplicate = memory.classify(key, 0, 0)
    assert isinstance(duplicate, AppendResult) and duplicate.base_offset == 100
    assert memory.classify(key, 0, 40) is False  # a gap: look back
    assert memory.classify(key, 1, 0) is False  # a new epoch
    memory.record(key, _appended(1, 0, 1, 200))
    with pytest.raises(ProducerFenced, match="epoch 0 is fenced on 'orders' partition 0"):
        memory.classify(key, 0, 15)  # an older epoch than one appended: refused
    assert memory.classify(key, 1, 1) is True


def test_errors_map_to_kafka_codes_clients_understand() -> None:
    assert codes.code_for(TopicNotFound("t")) == codes.UNKNOWN_TOPIC_OR_PARTITION
    assert codes.code_for(AppendConflict("busy")) == codes.REQUEST_TIMED_OUT  # retriable
    assert codes.code_for(CorruptRecord("t", 0, "bad")) == codes.CORRUPT_MESSAGE
    assert codes.code_for(OutOfOrderSequence("t", 0, 7, 9, 5)) == 45
    assert codes.code_for(ProducerFenced("t", 0, 7, 0, 1)) == 47  # INVALID_PRODUCER_EPOCH


def _member(member_id: str, joined: int, protocols: tuple[str, ...] = ("range",),
            beat: int = 0) -> ClassicMember:
    return ClassicMember(member_id, protocols=[(p, "") for p in protocols], joined=joined,
                         beat_ms=beat, rebalance_ms=5000)


def _coordinator(initial_delay_ms: int = 0) -> Coordinator:
    class Host:
        engine: Any = type("E", (), {"kafka_groups": None})()
        auth: Any = None
        node_id = 0
        advertised = ("h", 1)

    return Coordinator(Host(), initial_delay_ms=initial_delay_ms)  # type: ignore[arg-type]


def test_a_generation_forms_when_every_member_rejoined_or_the_deadline_passed() -> None:
    coordinator = _coordinator()
    group = ClassicGroup("g", state=EMPTY)
    group.members = {"a": _member("a", 0, beat=1000), "b": _member("b", 0, beat=1000)}
    coordinator._start_rebalance(group, now=1000)
    assert (group.state, group.round) == (PREPARING, 1)
    group.members["a"].joined = 1
    coordinator._try_complete(group, now=2000)
    assert group.state == PREPARING  # b has not rejoined yet
    coordinator._try_complete(group, now=group.deadline_ms)
    assert group.state == COMPLETING and list(group.members) == ["a"]  # b dropped
    assert (group.generation, group.leader) == (1, "a")


def test_the_first_member_of_a_new_group_waits_the_initial_delay_for_the_others() -> None:
    """Like group.initial.rebalance.delay.ms: the first JoinGroup of an empty group does not
    form a generation of one (whose leader would assign before the others arrive); members
    joining within the delay are in generation 1."""
    coordinator, group = _coordinator(initial_delay_ms=1000), ClassicGroup("g")
    assert coordinator._admit(group, _member("a", 0), "consumer", now=10_000) \
        == (codes.NONE, 1)
    coordinator._try_complete(group, now=10_500)
    assert group.state == PREPARING and group.generation == 0
    assert coordinator._admit(group, _member("b", 0), "consumer", now=10_600) \
        == (codes.NONE, 1)
    assert group.state == PREPARING  # b is in the round, the delay is not over
    coordinator._try_complete(group, now=11_000)
    assert group.state == COMPLETING and group.generation == 1
    assert (sorted(group.members), group.leader) == (["a", "b"], "a")
    assert group.deadline_ms == 10_000 + 5000  # the joining member's rebalance timeout


def test_a_member_of_another_protocol_type_is_refused() -> None:
    coordinator, group = _coordinator(), ClassicGroup("g")
    coordinator._admit(group, _member("a", 0), "consumer", now=1000)
    assert coordinator._admit(group, _member("b", 0), "connect", now=1100) \
        == (codes.INCONSISTENT_GROUP_PROTOCOL, None)
    assert list(group.members) == ["a"]


def test_silent_members_expire_and_start_a_rebalance() -> None:
    coordinator = _coordinator()
    group = ClassicGroup("g", state="Stable", generation=3)
    group.members = {"a": _member("a", 1, beat=10_000), "b": _member("b", 1, beat=1_000)}
    coordinator._expire(group, now=12_000)  # b silent for 11 s > its 10 s session
    assert list(group.members) == ["a"] and group.state == PREPARING


def test_the_common_protocol_is_the_first_everyone_supports() -> None:
    members = [_member("a", 0, ("cooperative-sticky", "range")), _member("b", 0, ("range",))]
    assert _common_protocol(members) == "range"
    assert _common_protocol([_member("a", 0, ("x",)), _member("b", 0, ("y",))]) is None


def test_sasl_messages_and_plain_credentials() -> None:
    assert oauth_token(b"n,,\x01auth=Bearer abc-_.\x01\x01") == "abc-_."
    auth = Authenticator({"PLAIN": PlainVerifier({"key": ("secret", "arn:aws:iam::1:user/u")})})
    session = auth.new_session("peer")
    assert auth.gate(session, 3) == codes.SASL_AUTHENTICATION_FAILED  # Metadata first: no
    session = auth.new_session("peer")
    assert auth.handshake(session, "PLAIN") == codes.NONE
    assert auth.authenticate(session, b"\x00key\x00secret")[0] == codes.NONE
    assert session.principal == "arn:aws:iam::1:user/u" and auth.gate(session, 3) is None
    other = auth.new_session("peer")
    auth.handshake(other, "PLAIN")
    assert auth.authenticate(other, b"\x00key\x00wrong")[0] == codes.SASL_AUTHENTICATION_FAILED
