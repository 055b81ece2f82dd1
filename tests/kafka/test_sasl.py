"""SASL on the gateway: OAUTHBEARER tokens that are presigned sts:GetCallerIdentity requests
(checked against the local platform's STS, moto), PLAIN with local credentials, and the
HTTP API's grants deciding what each caller may do."""

from __future__ import annotations

import asyncio
import base64
from collections.abc import Iterator

import boto3
import pytest
from aiokafka import AIOKafkaProducer
from confluent_kafka import Consumer, KafkaError, KafkaException, Producer, TopicPartition
from kafka import KafkaConsumer, KafkaProducer
from kafka.errors import KafkaError as KafkaPythonError

from streamlet.engine.grants import Grant, http_policy
from streamlet.kafka import KafkaGateway
from streamlet.kafka.auth import (
    ApiArn,
    Authenticator,
    AuthFailed,
    PlainVerifier,
    StaticPolicies,
    StsVerifier,
)
from streamlet.kafka.tokens import (
    AIOKafkaTokenProvider,
    KafkaPythonTokenProvider,
    oauth_cb,
    presigned_token,
)
from streamlet.local import LocalPlatform
from streamlet.policy import Policy

API = ApiArn()
QUIET = {"log_level": 3}


@pytest.fixture(scope="module")
def reader(platform: LocalPlatform) -> tuple[str, boto3.Session]:
    """A moto IAM user granted produce and consume on topics ``allowed*``."""
    iam = platform.client("iam")
    iam.create_user(UserName="kafka-reader")
    key = iam.create_access_key(UserName="kafka-reader")["AccessKey"]
    session = boto3.Session(aws_access_key_id=key["AccessKeyId"],
                            aws_secret_access_key=key["SecretAccessKey"],
                            region_name="us-east-1")
    arn = session.client("sts", endpoint_url=platform.aws_endpoint_url) \
        .get_caller_identity()["Arn"]
    return arn, session


@pytest.fixture(scope="module")
def secured(platform: LocalPlatform, reader: tuple[str, boto3.Session]
            ) -> Iterator[KafkaGateway]:
    arn, session = reader
    grants = [Grant.produce("allowed", "allowed"), Grant.consume("allowed", "allowed")]
    policies = StaticPolicies({
        arn: (Policy.from_json(http_policy(grants, API.arn), "reader"),),
        "arn:aws:iam::000000000000:user/admin": (Policy.from_json(
            http_policy([Grant.admin()], API.arn), "admin"),)})
    key = session.get_credentials().access_key
    secret = session.get_credentials().secret_key
    authenticator = Authenticator(
        {"OAUTHBEARER": StsVerifier(endpoint=platform.aws_endpoint_url),
         "PLAIN": PlainVerifier({key: (secret, arn),
                                 "admin": ("admin-secret",
                                           "arn:aws:iam::000000000000:user/admin")})},
        policies, API)
    platform.engine().provision(platform.client("s3"))
    for name in ("allowed-1", "payroll-1"):
        if name not in platform.engine().list_topics():
            platform.engine().create_topic(name, 1)
    gateway = KafkaGateway(platform.engine(), port=0, authenticator=authenticator)
    yield gateway.start_background()
    gateway.stop()


def _presign(platform: LocalPlatform, session: boto3.Session) -> dict[str, object]:
    return {"session": session, "endpoint_url": platform.aws_endpoint_url}


def test_kafka_python_with_an_sts_token_reaches_its_topics_only(
        secured: KafkaGateway, platform: LocalPlatform,
        reader: tuple[str, boto3.Session]) -> None:
    provider = KafkaPythonTokenProvider(**_presign(platform, reader[1]))
    common = {"bootstrap_servers": secured.bootstrap, "security_protocol": "SASL_PLAINTEXT",
              "sasl_mechanism": "OAUTHBEARER", "sasl_oauth_token_provider": provider}
    producer = KafkaProducer(**common)
    assert producer.send("allowed-1", b"hello").get(10).offset >= 0
    with pytest.raises(KafkaPythonError, match="TopicAuthorizationFailed"):
        producer.send("payroll-1", b"nope").get(10)
    producer.close()
    consumer = KafkaConsumer("allowed-1", group_id="allowed-g", auto_offset_reset="earliest",
                             **common)
    got = [r for rs in consumer.poll(timeout_ms=5000).values() for r in rs]
    for _ in range(10):
        if got:
            break
        got = [r for rs in consumer.poll(timeout_ms=1000).values() for r in rs]
    assert b"hello" in [r.value for r in got]
    consumer.close()


def test_aiokafka_and_confluent_kafka_authenticate_with_their_token_providers(
        secured: KafkaGateway, platform: LocalPlatform,
        reader: tuple[str, boto3.Session]) -> None:
    async def produce() -> int:
        producer = AIOKafkaProducer(
            bootstrap_servers=secured.bootstrap, security_protocol="SASL_PLAINTEXT",
            sasl_mechanism="OAUTHBEARER",
            sasl_oauth_token_provider=AIOKafkaTokenProvider(**_presign(platform, reader[1])))
        await producer.start()
        try:
            return (await producer.send_and_wait("allowed-1", b"from-aiokafka")).offset
        finally:
            await producer.stop()

    assert asyncio.run(produce()) >= 0
    config = {"bootstrap.servers": secured.bootstrap, "security.protocol": "SASL_PLAINTEXT",
              "sasl.mechanisms": "OAUTHBEARER",
              "oauth_cb": oauth_cb(**_presign(platform, reader[1])), **QUIET}
    delivered: dict[str, object] = {}
    producer = Producer(config)
    for topic in ("allowed-1", "payroll-1"):
        producer.produce(topic, b"from-librdkafka",
                         on_delivery=lambda e, m: delivered.__setitem__(m.topic(), e))
    producer.flush(20)
    assert delivered["allowed-1"] is None
    assert "AUTHORIZATION" in delivered["payroll-1"].name()  # type: ignore[attr-defined]
    consumer = Consumer({**config, "group.id": "allowed-c"})
    _, high = consumer.get_watermark_offsets(TopicPartition("allowed-1", 0), 10)
    assert high >= 2
    consumer.close()


def test_transactional_ids_outside_the_grant_are_refused(
        secured: KafkaGateway, reader: tuple[str, boto3.Session]) -> None:
    credentials = reader[1].get_credentials()
    config = {"bootstrap.servers": secured.bootstrap, "security.protocol": "SASL_PLAINTEXT",
              "sasl.mechanisms": "PLAIN", "sasl.username": credentials.access_key,
              "sasl.password": credentials.secret_key, **QUIET}
    producer = Producer({**config, "transactional.id": "allowed-tx"})
    producer.init_transactions(20)
    producer.begin_transaction()
    producer.produce("allowed-1", b"in a granted transaction")
    producer.commit_transaction(20)
    refused = Producer({**config, "transactional.id": "payroll-tx"})
    with pytest.raises(KafkaException) as raised:
        refused.init_transactions(20)
    assert raised.value.args[0].code() == KafkaError.TRANSACTIONAL_ID_AUTHORIZATION_FAILED


def test_plain_with_local_credentials_and_refusals(secured: KafkaGateway) -> None:
    admin = KafkaProducer(bootstrap_servers=secured.bootstrap,
                          security_protocol="SASL_PLAINTEXT", sasl_mechanism="PLAIN",
                          sasl_plain_username="admin", sasl_plain_password="admin-secret")
    assert admin.send("payroll-1", b"admin may").get(10).offset >= 0
    admin.close()
    for extra in ({"security.protocol": "SASL_PLAINTEXT", "sasl.mechanisms": "PLAIN",
                   "sasl.username": "admin", "sasl.password": "wrong"},
                  {}):  # a wrong secret, and no SASL at all
        errors: list = []
        producer = Producer({"bootstrap.servers": secured.bootstrap, **extra, **QUIET,
                             "message.timeout.ms": 2000, "error_cb": errors.append})
        delivered: list = []
        producer.produce("allowed-1", b"refused", on_delivery=lambda e, m, d=delivered: d.append(e))
        producer.flush(10)
        assert delivered and delivered[0] is not None  # never written
        if extra:
            assert any("uthentication" in e.str() for e in errors), errors


def test_tokens_are_checked_before_sts_is_called(platform: LocalPlatform,
                                                 reader: tuple[str, boto3.Session]) -> None:
    calls: list[str] = []

    def fetch(url: str, headers: dict[str, str]) -> tuple[int, bytes]:
        calls.append(url)
        return 200, b"<r><Arn>arn:aws:iam::1:user/x</Arn></r>"

    aws = StsVerifier(fetch=fetch)

    def message(url: str) -> bytes:
        token = base64.urlsafe_b64encode(url.encode()).decode().rstrip("=")
        return b"n,,\x01auth=Bearer " + token.encode() + b"\x01\x01"

    local, _ = presigned_token(session=reader[1], endpoint_url=platform.aws_endpoint_url)
    for bad in ("https://evil.example.com/?Action=GetCallerIdentity",
                "http://sts.amazonaws.com/?Action=GetCallerIdentity",
                "https://sts.amazonaws.com/?Action=AssumeRole",
                "https://sts.us-east-1.amazonaws.com/?Action=GetCallerIdentity"
                "&X-Amz-SignedHeaders=host&X-Amz-Date=20260101T000000Z&X-Amz-Expires=900",
                base64.urlsafe_b64decode(local + "=" * (-len(local) % 4)).decode()):
        with pytest.raises(AuthFailed):
            aws.verify(message(bad))
    assert calls == []  # no request to a host a client chose, nor for an unbound token
