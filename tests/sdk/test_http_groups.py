"""Group members over both transports at once, and GroupOps errors over HTTP."""

from __future__ import annotations

import time

import pytest

from streamlet import Admin, CommitFailed, Consumer, InvalidRequest, Producer, TopicPartition
from streamlet.errors import GroupNotFound, TopicNotFound
from streamlet.local import LocalPlatform
from streamlet.local.credentials import LOCAL_CREDENTIALS
from streamlet.transport.http import HttpTransport
from tests.sdk.test_groups import SESSION_MS, pump, sizes


@pytest.fixture
def gateway(gateway_url: str, live_platform: LocalPlatform,
            monkeypatch: pytest.MonkeyPatch) -> str:
    key, secret = LOCAL_CREDENTIALS
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", key)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", secret)
    return gateway_url


def test_a_direct_and_an_http_member_share_one_group(gateway: str, live_platform: LocalPlatform,
                                                     topic: str) -> None:
    Admin(gateway).create_topic(topic, 4)
    with Producer(gateway) as producer:
        for i in range(40):
            producer.send(topic, str(i), partition=i % 4)
    group = f"mixed-{topic}"
    direct = Consumer(topic, endpoint=live_platform.endpoint, group_id=group,
                      auto_offset_reset="earliest", session_timeout_ms=SESSION_MS)
    http = Consumer(topic, endpoint=gateway, group_id=group, auto_offset_reset="earliest",
                    session_timeout_ms=SESSION_MS)
    seen = pump([direct, http], lambda: sizes([direct, http]) == [2, 2])
    assert not set(direct.assignment()) & set(http.assignment())
    owners = {r.consumer_id for r in Admin(gateway).describe_group(group)}
    assert owners == {direct._group.member_id, http._group.member_id}  # type: ignore[union-attr]
    deadline = time.monotonic() + 15
    while len({(r.partition, r.offset) for r in seen}) < 40 and time.monotonic() < deadline:
        seen += direct.poll(0.1) + http.poll(0.1)
    http.close()  # commits over HTTP and hands over at once
    seen += pump([direct], lambda: len(direct.assignment()) == 4)
    seen += direct.poll(0.2)
    assert sorted((r.partition, r.offset) for r in seen) == sorted(
        (p, o) for p in range(4) for o in range(10))  # each record once
    direct.close()


def test_group_errors_over_http_are_the_direct_ones(gateway: str, live_platform: LocalPlatform,
                                                   topic: str) -> None:
    groups = HttpTransport(gateway).groups
    tp = TopicPartition(topic, 0)
    group = f"errors-{topic}"
    with pytest.raises(TopicNotFound):  # leases name existing topics (issue 16)
        groups.ensure_leases(group, [tp])
    Admin(gateway).create_topic(topic, 1)
    assert groups.snapshot(group).leases == {} and groups.lease(group, tp) is None
    groups.ensure_leases(group, [tp])
    mine = groups.take(group, tp, "m-1", groups.lease(group, tp))  # type: ignore[arg-type]
    assert mine is not None and (mine.owner, mine.epoch) == ("m-1", 1)
    direct = live_platform.engine().groups
    direct.take(group, tp, "m-2", mine)  # another member takes it over
    with pytest.raises(CommitFailed, match="nothing was committed"):
        groups.commit(group, "m-1", {tp: (mine.epoch, 5, "")})
    assert direct.lease(group, tp).committed is None  # type: ignore[union-attr]
    with pytest.raises(InvalidRequest, match="Group id 'a#b'"):
        groups.snapshot("a#b")
    with pytest.raises(GroupNotFound):
        groups.delete(f"never-{topic}")


def test_a_rest_instance_and_an_sdk_consumer_over_http_share_a_group(gateway: str,
                                                                    topic: str) -> None:
    api = HttpTransport(gateway)
    Admin(gateway).create_topic(topic, 2)
    group = f"shared-{topic}"
    base = f"/consumers/{group}/instances/r1"
    api._request("POST", f"/consumers/{group}", json_body={"name": "r1",
                                                            "auto.offset.reset": "earliest"})
    api._request("POST", f"{base}/subscription", json_body={"topics": [topic]})
    with Consumer(topic, endpoint=gateway, group_id=group, session_timeout_ms=SESSION_MS,
                  auto_offset_reset="earliest") as sdk:
        pump([sdk], lambda: len(sdk.assignment()) == 1)  # the REST member counts as live
        api._request("GET", f"{base}/records", query={"timeout": 0})
        parts = api._request("GET", f"{base}/assignments").json()["partitions"]
        assert [TopicPartition(p["topic"], p["partition"]) for p in parts] == sorted(
            {TopicPartition(topic, 0), TopicPartition(topic, 1)} - sdk.assignment())
        rows = Admin(gateway).describe_group(group)
        assert {r.host for r in rows} == {"rest-v2", sdk._group._me.host}  # type: ignore[union-attr]
        api._request("DELETE", base)  # the REST member leaves: the SDK one takes over at once
        pump([sdk], lambda: len(sdk.assignment()) == 2)
