"""The platform: how an ocrmesh process runs, whatever service it is.

gRPC server and client bootstrap, processes, the settings base, logs, metrics, tracing,
TLS and AMQP connections. It may import the generated code (`ocrmesh.<area>.v1`) and
libraries; never the shared rules, a service, a client or the harness (docs/architecture.md).
"""
