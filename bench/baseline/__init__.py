"""The original tutorial design, rebuilt minimal but faithful, only to be measured against
ocrmesh by `bench/bench_gateway.py`. Nothing in ocrmesh uses it.

What it keeps from the tutorial ("FastAPI + RabbitMQ microservices"), because that is what
is being measured:

- `gateway`: a FastAPI edge whose `async def` route calls the auth service with a BLOCKING
  HTTP request (`urllib.request`, the tutorial used `requests`), so the event loop stands
  still for the whole call; and a sync `def /ocr` route that makes an OCR request over
  RabbitMQ with a NEW connection and a new exclusive reply queue per request.
- `auth_service`: a separate FastAPI process whose `async def` route decodes the JWT and
  loads the user with a synchronous SQLAlchemy query.
- `ocr_worker`: a pika consumer (prefetch 1) that runs the OCR engine and publishes the
  answer to `reply_to` with the request's `correlation_id`.

What it leaves out, because it would only make the baseline slower or leak resources and
is not the design under test: temporary files for uploads, loading the OCR model per
request, busy-polling `process_data_events(0)` while waiting for the reply, and never
closing the per-request connection. The OCR engine is ocr_svc's own (rapidocr), so both
sides do the same recognition work.

Configuration is by environment variables (set by the benchmark):
`BASELINE_AUTH_URL`, `BASELINE_PUBLIC_KEY_FILE`, `BASELINE_OCR_QUEUE`, `DATABASE_URL`,
`RABBITMQ_URL`, `TOKEN_ISSUER`, `TOKEN_AUDIENCE`, `OCR_ENGINE_THREADS`.
"""
