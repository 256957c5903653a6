"""The tutorial's ML service: `python -m bench.baseline.ocr_worker`. Consumes OCR requests
from BASELINE_OCR_QUEUE one at a time (prefetch 1), runs ocr_svc's rapidocr engine on the
image and publishes the answer to the request's `reply_to` queue. Stops on SIGTERM."""

from __future__ import annotations

import base64
import json
import logging
import os
import signal
import time
from types import FrameType

import pika
from pika.adapters.blocking_connection import BlockingChannel
from pika.spec import Basic, BasicProperties

from bench.baseline.config import ocr_queue, rabbitmq_url
from ocr_svc.engines import warm_up
from ocr_svc.engines.rapid import RapidOcrEngine
from ocr_svc.images import ImageLimits, InvalidImage, decode_image

log = logging.getLogger("bench.baseline.ocr_worker")

LIMITS = ImageLimits(max_bytes=10 * 1024 * 1024, max_pixels=40_000_000)


def recognize(engine: RapidOcrEngine, image: bytes) -> str:
    decoded = decode_image(image, LIMITS)
    lines = []
    for region in engine.detect(decoded.pixels):
        line = engine.read(decoded.pixels, region)
        if line is not None:
            lines.append(line.text)
    return "\n".join(lines)


def main() -> None:
    logging.basicConfig(level=logging.INFO)
    # The same thread budget ocr_svc gives one worker on this machine (OCR_ENGINE_THREADS=0).
    threads = int(os.environ.get("OCR_ENGINE_THREADS", "0")) or (os.cpu_count() or 1)
    engine = RapidOcrEngine(threads=threads)
    warm_up(engine)

    connection = pika.BlockingConnection(pika.URLParameters(rabbitmq_url()))
    channel = connection.channel()
    channel.queue_declare(queue=ocr_queue())

    def on_request(ch: BlockingChannel, method: Basic.Deliver, props: BasicProperties, body: bytes) -> None:
        message = json.loads(body)
        started = time.perf_counter()
        try:
            text = recognize(engine, base64.b64decode(message["file"]))
            log.info("recognised in %.1f ms", (time.perf_counter() - started) * 1e3)
            response: dict[str, object] = {
                "user_id": message["user_id"],
                "user_name": message["user_name"],
                "user_email": message["user_email"],
                "ocr_text": text,
            }
        except InvalidImage as exc:
            response = {"error": exc.reason}
        ch.basic_publish(
            exchange="",
            routing_key=str(props.reply_to),
            properties=pika.BasicProperties(correlation_id=props.correlation_id),
            body=json.dumps(response),
        )
        assert method.delivery_tag is not None
        ch.basic_ack(delivery_tag=method.delivery_tag)

    def stop(signum: int, frame: FrameType | None) -> None:
        # A signal can arrive in the middle of pika's I/O: hand the stop to its loop.
        connection.add_callback_threadsafe(channel.stop_consuming)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    channel.basic_qos(prefetch_count=1)
    channel.basic_consume(queue=ocr_queue(), on_message_callback=on_request)
    log.info("awaiting RPC requests on %s", ocr_queue())
    channel.start_consuming()
    connection.close()


if __name__ == "__main__":
    main()
