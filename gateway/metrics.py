"""The gateway's Prometheus metrics and `GET /metrics`.

Requests are counted by `gateway.middleware.RequestContextMiddleware`, which already times
every request for its access log: by method, route *template* (`/ocr/stream`, never the raw
path, whose values are unbounded; a path no route matches is `unmatched`) and status.
Refused uploads are the 4xx answers of the upload routes, by reason, whichever layer
refused them (the body limits before the route, the route's own checks, ocr_svc's).
"""

from __future__ import annotations

from fastapi import APIRouter, Response
from prometheus_client import Counter, Histogram
from starlette.types import Scope

from gateway.routes.ocr import UPLOAD_PATHS
from ocrmesh.platform.metrics import LATENCY_BUCKETS, render_metrics

UNMATCHED_ROUTE = "unmatched"

HTTP_REQUESTS = Counter(
    "http_requests_total",
    "HTTP requests answered, by method, route template and status code.",
    ["method", "route", "status"],
)
HTTP_REQUEST_SECONDS = Histogram(
    "http_request_duration_seconds",
    "Time from a request's arrival to the end of its response (a stream: its last event).",
    ["method", "route"],
    buckets=LATENCY_BUCKETS,
)
UPLOAD_REFUSALS = Counter(
    "gateway_upload_refusals_total",
    "Uploads to /ocr and /ocr/stream refused, by reason.",
    ["route", "reason"],
)
# Status of a refused upload -> reason.
REFUSAL_REASONS = {
    400: "invalid",  # empty, malformed multipart, or an image ocr_svc cannot read
    401: "unauthenticated",
    408: "too_slow",
    413: "too_large",
    415: "not_an_image",
    422: "missing_file",
    429: "too_many",  # the client's, the user's or the OCR queue's limit
}
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})

_children: dict[tuple[str, str, int], tuple[Counter, Histogram]] = {}


def route_of(scope: Scope) -> str:
    """The template of the route that answered (`scope["route"]`, set by the router on a
    match), or `unmatched`."""
    route = scope.get("route")
    path = getattr(route, "path", None)
    return path if isinstance(path, str) else UNMATCHED_ROUTE


def observe_request(scope: Scope, status: int, seconds: float) -> None:
    """Count one answered request (called once per request, from the access log's path)."""
    method = scope.get("method", "")
    if method not in _METHODS:
        method = "OTHER"
    route = route_of(scope)
    key = (method, route, status)
    children = _children.get(key)
    if children is None:
        children = _children[key] = (
            HTTP_REQUESTS.labels(method, route, str(status)),
            HTTP_REQUEST_SECONDS.labels(method, route),
        )
    children[0].inc()
    children[1].observe(seconds)
    if status in REFUSAL_REASONS and scope.get("path") in UPLOAD_PATHS:
        # The body limits refuse before routing: name the upload path, a known constant.
        UPLOAD_REFUSALS.labels(scope["path"], REFUSAL_REASONS[status]).inc()


router = APIRouter()


@router.get("/metrics", include_in_schema=False)
def metrics() -> Response:
    """Prometheus exposition: every worker's values added up when there are several."""
    body, content_type = render_metrics()
    return Response(content=body, media_type=content_type)
