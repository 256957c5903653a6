"""The tutorial's `OcrRpcClient`: RabbitMQ request/reply with a new connection per request."""

from __future__ import annotations

import json
import time
import uuid
from typing import Any

import pika
from pika.adapters.blocking_connection import BlockingChannel
from pika.spec import Basic, BasicProperties

from bench.baseline.config import REPLY_TIMEOUT_S, ocr_queue, rabbitmq_url


class ReplyTimeout(Exception):
    """No reply arrived within the deadline."""


class OcrRpcClient:
    """One instance per request, as in the tutorial: a fresh connection, channel and
    exclusive reply queue each time."""

    def __init__(self) -> None:
        self.connection = pika.BlockingConnection(pika.URLParameters(rabbitmq_url()))
        self.channel = self.connection.channel()
        result = self.channel.queue_declare(queue="", exclusive=True)
        self.callback_queue = str(result.method.queue)
        self.channel.basic_consume(
            queue=self.callback_queue, on_message_callback=self._on_response, auto_ack=True
        )
        self.response: bytes | None = None
        self.corr_id = ""

    def _on_response(
        self, channel: BlockingChannel, method: Basic.Deliver, props: BasicProperties, body: bytes
    ) -> None:
        if props.correlation_id == self.corr_id:
            self.response = body

    def call(self, message: dict[str, Any], timeout: float = REPLY_TIMEOUT_S) -> Any:
        self.response = None
        self.corr_id = str(uuid.uuid4())
        self.channel.basic_publish(
            exchange="",
            routing_key=ocr_queue(),
            properties=pika.BasicProperties(reply_to=self.callback_queue, correlation_id=self.corr_id),
            body=json.dumps(message),
        )
        deadline = time.monotonic() + timeout
        while self.response is None:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise ReplyTimeout(f"no OCR reply within {timeout}s")
            # Blocks until something arrives (the tutorial passed no limit, i.e. 0, and so
            # spun a core at 100% while waiting: left out, it would slow the OCR worker).
            self.connection.process_data_events(time_limit=min(remaining, 1.0))
        return json.loads(self.response)

    def close(self) -> None:
        if self.connection.is_open:
            self.connection.close()
