"""`ocrmesh ocr --format ... -o ...` and documents' pages in the printed output, as a
subprocess against the gateway under a real uvicorn (and, with --grpc, straight against the
test OcrService), both on the test servicers of tests/integration/gateway/fakes.py."""

from __future__ import annotations

import asyncio
import os
import socket
import sys
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import uvicorn
from typer.testing import CliRunner

from gateway.app import create_app
from harness.tokens import TokenIssuerForTests
from ocrmesh.auth.v1 import auth_pb2_grpc
from ocrmesh.ocr.v1 import ocr_pb2, ocr_pb2_grpc
from ocrmesh.platform.grpc_server import HostedService, create_server
from ocrmesh_cli.app import app
from ocrmesh_cli.config import SavedLogin, TokenStore
from tests.integration.gateway.fakes import AUTH_SERVICE, OCR_SERVICE, FakeAuth, FakeOcr, Mesh

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]

OCRMESH = Path(sys.executable).with_name("ocrmesh")
PDF_BYTES = b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n the test servicer does not read it"
TWO_PAGES = [["First page", "its second line"], ["Trang hai"]]
RENDERED = b"%PDF-1.7 a searchable pdf, in several chunks"


@dataclass
class Served:
    mesh: Mesh
    url: str
    env: dict[str, str]


@pytest.fixture
async def served(tmp_path: Path) -> AsyncIterator[Served]:
    issuer = TokenIssuerForTests()
    auth, ocr = FakeAuth(issuer), FakeOcr(pages=TWO_PAGES, rendered=RENDERED)
    auth_server, auth_port = create_server(
        [HostedService.of(auth, auth_pb2_grpc.add_AuthServiceServicer_to_server, AUTH_SERVICE)],
        host="127.0.0.1",
    )
    ocr_server, ocr_port = create_server(
        [HostedService.of(ocr, ocr_pb2_grpc.add_OcrServiceServicer_to_server, OCR_SERVICE)], host="127.0.0.1"
    )
    await auth_server.start()
    await ocr_server.start()
    mesh = Mesh(issuer, auth, ocr, auth_server, ocr_server, auth_port, ocr_port)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    server = uvicorn.Server(uvicorn.Config(create_app(mesh.settings()), log_config=None, lifespan="on"))
    task = asyncio.create_task(server.serve(sockets=[sock]))
    while not server.started:
        await asyncio.sleep(0.01)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GRPC_TLS_", "OCR_", "OCRMESH_"))}
    env.update(HOME=str(tmp_path), XDG_CONFIG_HOME=str(tmp_path / "config"))
    TokenStore(tmp_path / "config" / "ocrmesh").save(
        SavedLogin(url=url, email="ada@example.com", access_token=mesh.token(), expires_at=time.time() + 600)
    )
    yield Served(mesh, url, env)
    server.should_exit = True
    await asyncio.wait_for(task, 15)
    await auth_server.stop(0)
    await ocr_server.stop(0)


@pytest.fixture
def scan(tmp_path: Path) -> Path:
    path = tmp_path / "scan.pdf"
    path.write_bytes(PDF_BYTES)
    return path


async def ocrmesh(env: dict[str, str], *args: str) -> tuple[int, bytes, str]:
    # A subprocess, while this event loop keeps serving the gateway and the servicers.
    process = await asyncio.create_subprocess_exec(
        str(OCRMESH), *args, env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    stdout, stderr = await asyncio.wait_for(process.communicate(), timeout=60)
    assert process.returncode is not None
    return process.returncode, stdout, stderr.decode()


async def test_format_pdf_saves_the_searchable_pdf_to_o(served: Served, scan: Path, tmp_path: Path) -> None:
    target = tmp_path / "scan.searchable.pdf"
    code, out, err = await ocrmesh(
        served.env, "ocr", str(scan), "--lang", "vi,en", "--force-ocr", "--format", "pdf", "-o", str(target)
    )
    assert (code, out) == (0, b""), err
    assert target.read_bytes() == RENDERED
    assert err.startswith(f"{scan}: 2 pages, ")
    assert f"-> {target} in " in err
    [request] = served.mesh.ocr.render_requests
    assert request.format == ocr_pb2.OUTPUT_FORMAT_PDF
    assert list(request.document.languages) == ["vi", "en"]
    assert request.document.force_ocr is True
    assert request.document.image == PDF_BYTES
    assert request.document.filename == "scan.pdf"
    assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".part")] == []


async def test_a_text_format_without_o_goes_to_stdout(served: Served, scan: Path) -> None:
    code, out, err = await ocrmesh(served.env, "ocr", str(scan), "--format", "alto")
    assert code == 0, err
    assert out == RENDERED
    assert served.mesh.ocr.render_requests[0].format == ocr_pb2.OUTPUT_FORMAT_ALTO


async def test_format_json_saves_the_gateways_whole_result(
    served: Served, scan: Path, tmp_path: Path
) -> None:
    import json

    target = tmp_path / "scan.json"
    code, _, err = await ocrmesh(served.env, "ocr", str(scan), "--format", "json", "-o", str(target))
    assert code == 0, err
    result = json.loads(target.read_text())
    assert [page["page"] for page in result["pages"]] == [1, 2]
    assert [line["page"] for line in result["lines"]] == [1, 1, 2]


async def test_several_files_go_into_the_o_directory_under_their_own_names(
    served: Served, scan: Path, tmp_path: Path
) -> None:
    other = tmp_path / "other.tiff"
    other.write_bytes(b"II*\x00\x08\x00\x00\x00 pages")
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    code, _, err = await ocrmesh(
        served.env, "ocr", str(scan), str(other), "--format", "txt", "-o", str(out_dir)
    )
    assert code == 0, err
    assert sorted(p.name for p in out_dir.iterdir()) == ["other.ocr.txt", "scan.ocr.txt"]


async def test_a_download_that_breaks_off_leaves_no_file(served: Served, scan: Path, tmp_path: Path) -> None:
    served.mesh.ocr.mode = "fail_mid"
    target = tmp_path / "scan.searchable.pdf"
    code, _, err = await ocrmesh(served.env, "ocr", str(scan), "--format", "pdf", "-o", str(target))
    assert code == 1
    assert "broke off before its end" in err
    assert not target.exists()
    assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".part")] == []


async def test_a_refused_document_is_rejected_input_in_ocr_svcs_words(
    served: Served, scan: Path, tmp_path: Path
) -> None:
    served.mesh.ocr.mode = "refuse:ENCRYPTED"
    target = tmp_path / "scan.searchable.pdf"
    code, _, err = await ocrmesh(served.env, "ocr", str(scan), "--format", "pdf", "-o", str(target))
    assert code == 4
    assert err.strip() == f"ocrmesh: {scan}: file: the document is refused: encrypted (HTTP 422)"
    assert not target.exists()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--format", "docx"], "one of json, txt, hocr, alto, pdf"),
        (["-o", "x.pdf"], "add --format"),
        (["--format", "pdf", "--json"], "--json and --text print events"),
        (["--format", "json", "--grpc"], "with --grpc use --json"),
    ],
)
def test_format_and_o_misused_are_usage_errors_before_any_call(
    scan: Path, args: list[str], message: str
) -> None:
    # In process: a usage error comes before any login or call.
    result = CliRunner().invoke(app, ["ocr", str(scan), *args])
    assert result.exit_code == 2
    assert message in " ".join(result.output.replace("│", " ").split())


def test_o_naming_the_input_is_a_usage_error(scan: Path) -> None:
    result = CliRunner().invoke(app, ["ocr", str(scan), "--format", "pdf", "-o", str(scan)])
    assert result.exit_code == 2
    assert "is one of the files to read" in result.output
    assert scan.read_bytes() == PDF_BYTES


async def test_text_output_marks_page_boundaries_with_a_form_feed(served: Served, scan: Path) -> None:
    code, out, err = await ocrmesh(served.env, "ocr", str(scan), "--text")
    assert code == 0, err
    assert out.decode() == "First page\nits second line\n\f\nTrang hai\n"


async def test_the_default_output_heads_each_page(served: Served, scan: Path) -> None:
    code, out, err = await ocrmesh(served.env, "ocr", str(scan))
    assert code == 0, err
    assert out.decode().splitlines() == [
        "── page 1 of 2 (deskewed 0.5°) ──",
        "First page",
        "its second line",
        "── page 2 of 2 (turned 90°, deskewed 0.5°, PDF text layer) ──",
        "Trang hai",
    ]
    assert "2 pages, 3 lines in" in err


async def test_grpc_renders_with_renderdocument(served: Served, scan: Path, tmp_path: Path) -> None:
    target = tmp_path / "scan.hocr"
    code, _, err = await ocrmesh(
        served.env,
        "ocr",
        "--grpc",
        "--ocr-addr",
        f"127.0.0.1:{served.mesh.ocr_port}",
        str(scan),
        "--format",
        "hocr",
        "-o",
        str(target),
    )
    assert code == 0, err
    assert target.read_bytes() == RENDERED
    assert served.mesh.ocr.render_requests[0].format == ocr_pb2.OUTPUT_FORMAT_HOCR
    assert err.startswith(f"{scan}: 2 pages, ")
