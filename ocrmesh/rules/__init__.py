"""Shared rules: what two or more services must agree on.

Access tokens, account rules, email events and the OCR event model. It may import the
platform and the generated code; never a service, a client or the harness
(docs/architecture.md).
"""
