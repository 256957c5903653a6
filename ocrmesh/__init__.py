"""The shared kernel of ocrmesh, in layers that import only downward (docs/architecture.md):

- `ocrmesh.auth.v1`, `ocrmesh.ocr.v1`, `ocrmesh.notify.v1`, `ocrmesh.reflection.v1`: the code
  generated from `protos/` (scripts/gen_protos.py), never edited by hand;
- `ocrmesh.platform`: how a process of the mesh runs (gRPC bootstrap, processes, settings
  base, logs, metrics, tracing, TLS, AMQP connections);
- `ocrmesh.rules`: what the services agree on (tokens, account rules, email events, the OCR
  event model).

Nothing here imports a service, a client or the harness; `make lint` runs `lint-imports`
with the contracts in pyproject.toml.
"""
