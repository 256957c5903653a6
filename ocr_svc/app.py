"""Wiring: settings -> engine, pipeline, token verifier, mail outbox, gRPC server."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from grpc import aio

from ocr_svc.documents.model import DocumentLimits
from ocr_svc.documents.upright import OrientationDetector
from ocr_svc.engines import create_engine, warm_up
from ocr_svc.engines.base import EngineUnavailable, OcrEngine
from ocr_svc.engines.tesseract_reader import installed_models
from ocr_svc.images import ImageLimits
from ocr_svc.languages import LanguageRouter
from ocr_svc.notifications import CompletionMailer, EventPublisher
from ocr_svc.per_user import CallsPerUser
from ocr_svc.pipeline import OcrPipeline
from ocr_svc.servicer import Authenticate, OcrServicer
from ocr_svc.settings import OcrSettings
from ocrmesh.ocr.v1 import ocr_pb2, ocr_pb2_grpc
from ocrmesh.platform.grpc_client import create_channel
from ocrmesh.platform.grpc_server import HostedService, MeshServer, create_server
from ocrmesh.platform.memory import return_large_buffers_to_the_os
from ocrmesh.rules.email_events import AsyncEmailPublisher
from ocrmesh.rules.tokens import BearerTokenInterceptor, TokenVerifier

log = logging.getLogger(__name__)

OCR_SERVICE = ocr_pb2.DESCRIPTOR.services_by_name["OcrService"].full_name
RECOGNIZE_METHOD = f"/{OCR_SERVICE}/Recognize"
LIST_LANGUAGES_METHOD = f"/{OCR_SERVICE}/ListLanguages"
RENDER_DOCUMENT_METHOD = f"/{OCR_SERVICE}/RenderDocument"


@dataclass
class OcrApp:
    """A wired ocr_svc: `start()` serves (health SERVING once the engine is warm), `stop()`
    stops gracefully."""

    settings: OcrSettings
    mesh: MeshServer
    port: int
    engine: OcrEngine
    pipeline: OcrPipeline
    mailer: CompletionMailer
    _closers: list[Callable[[], Awaitable[None]]] = field(default_factory=list)

    async def start(self, *, warm: bool = True) -> None:
        """Accept calls with health NOT_SERVING, load and warm the engine (in a thread, so
        health checks are answered meanwhile), then report SERVING. Raises
        `EngineUnavailable` when the engine cannot load."""
        return_large_buffers_to_the_os()
        self.mailer.start()
        # Calls that reach the worker before its engine is warm are refused as UNAVAILABLE
        # (retry in a moment), never run into an engine that is not loaded.
        self.pipeline.warm = False
        await self.mesh.start(serving=False)
        try:
            await asyncio.to_thread(warm_up if warm else _load_only, self.engine)
        except EngineUnavailable:
            raise
        except Exception as exc:
            # An engine that breaks on a plain line of text cannot serve anything.
            log.exception("engine failed its warm-up", extra={"engine": self.engine.name})
            raise EngineUnavailable(f"the {self.engine.name} engine failed its warm-up: {exc}") from exc
        self.pipeline.warm = True
        await self.mesh.set_serving(True)
        log.info("ocr_svc serving", extra={"port": self.port, "engine": self.engine.name})

    async def stop(self, grace: float | None = None) -> None:
        """Health NOT_SERVING, let running calls finish within `grace`, flush the mail
        outbox, close the connections."""
        grace = self.settings.shutdown_grace_seconds if grace is None else grace
        await self.mesh.stop(grace)
        self.pipeline.close()
        await self.mailer.stop(grace)
        for closer in self._closers:
            await closer()


def _load_only(engine: OcrEngine) -> float:
    engine.load()
    return 0.0


def create_app(
    settings: OcrSettings,
    *,
    engine: OcrEngine | None = None,
    authenticate: Authenticate | None = None,
    publisher: EventPublisher | None = None,
) -> OcrApp:
    """Build the service from `settings`; tests pass their own engine, authenticator or
    publisher, and OCR_PORT=0. Call from inside the event loop that will run it."""
    closers: list[Callable[[], Awaitable[None]]] = []
    engine = engine or create_engine(settings)
    interceptors: list[aio.ServerInterceptor] = []
    if authenticate is None:
        auth_channel = create_channel(settings.auth_addr, tls=settings.grpc_tls)
        closers.append(auth_channel.close)
        verifier = TokenVerifier.from_channel(
            auth_channel, issuer=settings.token_issuer, audience=settings.token_audience
        )
        authenticate = verifier.authenticate
        # A call without a valid token is refused before its image is parsed.
        interceptors.append(
            BearerTokenInterceptor(
                verifier, [RECOGNIZE_METHOD, RENDER_DOCUMENT_METHOD, LIST_LANGUAGES_METHOD]
            )
        )
    if publisher is None:
        email_publisher = AsyncEmailPublisher(
            settings.rabbitmq_url,
            settings.topology,
            confirm_timeout=settings.ocr_email_publish_timeout,
            connection_name="ocr_svc-email",
        )
        closers.insert(0, email_publisher.close)
        publisher = email_publisher
    image_limits = ImageLimits(max_bytes=settings.ocr_max_image_bytes, max_pixels=settings.ocr_max_pixels)
    tessdata, models = installed_models(settings.ocr_tessdata_dir)
    orientation = OrientationDetector(tessdata if "osd" in models else None)
    if settings.ocr_upright_pages and not orientation.available:
        log.warning("no osd.traineddata: pages are straightened but not turned upright")
    pipeline = OcrPipeline(
        engine,
        image_limits,
        workers=settings.ocr_workers,
        queue_size=settings.ocr_queue_size,
        cores=settings.engine_calls(),
        documents=DocumentLimits(
            image=image_limits, max_pages=settings.ocr_max_pages, dpi=settings.ocr_pdf_dpi
        ),
        upright=settings.ocr_upright_pages,
        orientation=orientation,
    )
    mailer = CompletionMailer(
        publisher,
        buffer_size=settings.ocr_email_buffer_size,
        publish_timeout=settings.ocr_email_publish_timeout,
    )
    languages = LanguageRouter(engine, settings.ocr_detector)
    log.info(
        "languages read",
        extra={"languages": {item.language.code: item.engine for item in languages.readable()}},
    )
    servicer = OcrServicer(
        pipeline,
        authenticate,
        mailer,
        CallsPerUser(settings.ocr_max_calls_per_user, page_limit=settings.ocr_max_pages_per_user),
        languages,
    )
    mesh, port = create_server(
        [HostedService.of(servicer, ocr_pb2_grpc.add_OcrServiceServicer_to_server, OCR_SERVICE)],
        port=settings.ocr_port,
        host=settings.ocr_host,
        tls=settings.grpc_tls,
        interceptors=interceptors,
        max_receive_message_bytes=settings.max_receive_message_bytes(),
        max_connection_age_s=settings.grpc_max_connection_age_seconds,
        max_connection_age_grace_s=settings.grpc_max_connection_age_grace_seconds,
    )
    return OcrApp(
        settings=settings,
        mesh=mesh,
        port=port,
        engine=engine,
        pipeline=pipeline,
        mailer=mailer,
        _closers=closers,
    )
