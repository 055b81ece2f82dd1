"""A Kafka wire-protocol gateway in front of Streamlet, and token providers for Kafka clients.

``streamlet local --kafka-port 9092`` and ``streamlet gateway`` run it; Kafka clients
(kafka-python, aiokafka, confluent-kafka / librdkafka, kcat) then produce to and consume
from Streamlet as from a broker. Needs the ``kafka`` extra (``pip install
'streamlet[kafka]'``: kafka-python's protocol classes).

Example:
    >>> from streamlet.kafka import KafkaGateway                      # doctest: +SKIP
    >>> gateway = KafkaGateway(engine, port=9092).start_background()  # doctest: +SKIP
"""

from __future__ import annotations

from .server import KafkaGateway

__all__ = ["KafkaGateway"]
