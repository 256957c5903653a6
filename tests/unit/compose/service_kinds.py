"""The services docker-compose.yml runs, by kind: what several compose test modules check
the file against."""

from __future__ import annotations

from harness.deployment import APP_SERVICES

APP_IDS = [app.name for app in APP_SERVICES]
INFRASTRUCTURE = ("postgres", "rabbitmq", "mailpit")
# Metrics and the dashboard (docs/observability.md).
OBSERVABILITY = ("prometheus", "grafana")
# The one-shot that prepares the signing key; it runs to completion, it is not a server.
ONE_SHOTS = ("auth-keys",)
