"""/healthz (the process is up) and /readyz (auth_svc and ocr_svc answer SERVING)."""

from __future__ import annotations

import asyncio

import grpc
from fastapi import APIRouter, status
from fastapi.responses import JSONResponse
from grpc_health.v1 import health_pb2

from gateway.backends import HealthCheck
from gateway.deps import BackendsDep
from gateway.errors import error_responses
from gateway.schemas import HealthOut, ReadinessOut
from ocrmesh.auth.v1 import auth_pb2
from ocrmesh.ocr.v1 import ocr_pb2

router = APIRouter(tags=["health"])

AUTH_SERVICE = auth_pb2.DESCRIPTOR.services_by_name["AuthService"].full_name
OCR_SERVICE = ocr_pb2.DESCRIPTOR.services_by_name["OcrService"].full_name
SERVING = health_pb2.HealthCheckResponse.ServingStatus.Name(health_pb2.HealthCheckResponse.SERVING)


async def _health_of(check: HealthCheck, service: str, deadline_seconds: float) -> str:
    """SERVING, another serving status, or the gRPC code that kept us from asking."""
    try:
        reply = await check(health_pb2.HealthCheckRequest(service=service), timeout=deadline_seconds)
    except grpc.aio.AioRpcError as exc:
        return exc.code().name
    return health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status)


# The edge's limits hold for the probes too (a client flooding /healthz is still refused).
@router.get("/healthz", summary="Liveness: the gateway process answers", responses=error_responses({}))
async def healthz() -> HealthOut:
    return HealthOut()


@router.get(
    "/readyz",
    response_model=ReadinessOut,
    summary="Readiness: auth_svc and ocr_svc report SERVING over gRPC health",
    responses={
        **error_responses({}),
        503: {"model": ReadinessOut, "description": "At least one service is not serving."},
    },
)
async def readyz(backends: BackendsDep) -> ReadinessOut | JSONResponse:
    timeout = backends.settings.readiness_timeout_seconds
    auth, ocr = await asyncio.gather(
        _health_of(backends.auth_health, AUTH_SERVICE, timeout),
        _health_of(backends.ocr_health, OCR_SERVICE, timeout),
    )
    checks = {"auth": auth, "ocr": ocr}
    if all(value == SERVING for value in checks.values()):
        return ReadinessOut(status="ready", checks=checks)
    body = ReadinessOut(status="not ready", checks=checks)
    return JSONResponse(body.model_dump(), status_code=status.HTTP_503_SERVICE_UNAVAILABLE)
