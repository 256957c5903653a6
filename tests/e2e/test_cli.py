"""The `ocrmesh` console script, run as a subprocess against the mesh, with its config
directory (XDG_CONFIG_HOME) and HOME in the test's temporary folder."""

from __future__ import annotations

import json
import stat
import time
from pathlib import Path

import pytest

from harness.cli import cli_env, ocrmesh
from harness.images import SAMPLE_PARAGRAPH, character_error_rate, sample_multiline_png
from harness.mesh import Mesh
from harness.ports import free_port
from notifier.mailbox import VERIFICATION_CODE, wait_for_mail
from ocrmesh_cli.config import SavedLogin, TokenStore
from tests.e2e.conftest import SignedUpUser, random_email

pytestmark = pytest.mark.e2e

EXPECTED_TEXT = "\n".join(SAMPLE_PARAGRAPH)
PASSWORD = "correct horse battery"


def token_file(env: dict[str, str]) -> Path:
    return Path(env["XDG_CONFIG_HOME"]) / "ocrmesh" / "token.json"


@pytest.fixture(scope="module")
def logged_in(mesh: Mesh, user: SignedUpUser, tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """The environment of a user logged in with `ocrmesh login`."""
    env = cli_env(tmp_path_factory.mktemp("cli-home"), mesh.gateway_url)
    done = ocrmesh(env, "login", user.email, "--password-stdin", stdin=user.password + "\n")
    assert done.returncode == 0, done.stderr
    return env


@pytest.fixture(scope="module")
def page(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("pages") / "page.png"
    path.write_bytes(sample_multiline_png())
    return path


def test_a_new_user_registers_verifies_logs_in_and_sees_themselves(mesh: Mesh, tmp_path: Path) -> None:
    env = cli_env(tmp_path, mesh.gateway_url)
    email = random_email()
    registered = ocrmesh(
        env, "register", email, "--name", "Ada Lovelace", "--password-stdin", stdin=PASSWORD + "\n"
    )
    assert registered.returncode == 0, registered.stderr
    assert registered.stdout == ""  # status goes to stderr; stdout is for data
    code = wait_for_mail(mesh.mail_dir, email, kind=VERIFICATION_CODE).code
    assert code is not None

    wrong = ocrmesh(env, "verify", email, "000000" if code != "000000" else "111111")
    assert wrong.returncode == 4, wrong.stderr
    assert wrong.stderr.startswith("ocrmesh: verify: ")
    verified = ocrmesh(env, "verify", email, code)
    assert verified.returncode == 0, verified.stderr

    bad_password = ocrmesh(env, "login", email, "--password-stdin", stdin="not the password\n")
    assert bad_password.returncode == 3, bad_password.stderr
    assert not token_file(env).exists()
    logged_in = ocrmesh(env, "login", email, "--password-stdin", stdin=PASSWORD + "\n")
    assert logged_in.returncode == 0, logged_in.stderr
    assert stat.S_IMODE(token_file(env).stat().st_mode) == 0o600
    assert PASSWORD not in token_file(env).read_text()

    me = ocrmesh(env, "me", "--json")
    assert me.returncode == 0, me.stderr
    user = json.loads(me.stdout)
    assert (user["email"], user["name"], user["is_verified"]) == (email, "Ada Lovelace", True)

    out = ocrmesh(env, "logout")
    assert out.returncode == 0, out.stderr
    assert not token_file(env).exists()
    after = ocrmesh(env, "me")
    assert after.returncode == 3
    assert after.stderr == "ocrmesh: not logged in: run `ocrmesh login EMAIL` first\n"


@pytest.mark.parametrize("mode", [[], ["--text"]], ids=["rich", "text"])
def test_ocr_prints_the_recognised_lines_of_a_page(
    logged_in: dict[str, str], page: Path, mode: list[str]
) -> None:
    done = ocrmesh(logged_in, "ocr", *mode, str(page))
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert len(lines) == len(SAMPLE_PARAGRAPH)
    assert character_error_rate(EXPECTED_TEXT, "\n".join(lines)) <= 0.05
    assert "Traceback" not in done.stderr


def assert_one_page_of_events(records: list[dict[str, object]], file: Path) -> None:
    assert {r["file"] for r in records} == {str(file)}
    kinds = [r["type"] for r in records]
    # An image is one page: its page event comes before its lines.
    assert kinds == ["started", "page", *["line"] * (len(kinds) - 3), "completed"]
    assert records[1]["page"] == 1
    lines = records[2:-1]
    assert [r["index"] for r in lines] == list(range(len(lines)))
    assert records[-1]["line_count"] == len(lines) == len(SAMPLE_PARAGRAPH)
    assert records[-1]["full_text"] == "\n".join(str(r["text"]) for r in lines)
    assert character_error_rate(EXPECTED_TEXT, str(records[-1]["full_text"])) <= 0.05


def test_ocr_json_streams_the_events_in_order_as_ndjson(logged_in: dict[str, str], page: Path) -> None:
    done = ocrmesh(logged_in, "ocr", "--json", str(page))
    assert done.returncode == 0, done.stderr
    assert_one_page_of_events([json.loads(line) for line in done.stdout.splitlines()], page)


def test_ocr_over_grpc_gives_the_same_events_from_ocr_svc(
    logged_in: dict[str, str], page: Path, mesh: Mesh
) -> None:
    done = ocrmesh(logged_in, "ocr", "--grpc", "--ocr-addr", mesh.ocr_addr, "--json", str(page))
    assert done.returncode == 0, done.stderr
    assert_one_page_of_events([json.loads(line) for line in done.stdout.splitlines()], page)


def test_several_files_run_together_and_a_non_image_fails_only_itself_with_4(
    logged_in: dict[str, str], page: Path, tmp_path: Path
) -> None:
    second = tmp_path / "second.png"
    second.write_bytes(page.read_bytes())
    notes = tmp_path / "notes.png"
    notes.write_text("these are notes, not an image\n")
    done = ocrmesh(logged_in, "ocr", "--text", "--concurrency", "2", str(page), str(notes), str(second))
    assert done.returncode == 4, done.stderr
    by_file: dict[str, list[str]] = {}
    for line in done.stdout.splitlines():
        name, _, text = line.partition(": ")
        by_file.setdefault(name, []).append(text)
    assert set(by_file) == {str(page), str(second)}
    for texts in by_file.values():
        assert character_error_rate(EXPECTED_TEXT, "\n".join(texts)) <= 0.05
    [error] = done.stderr.splitlines()
    assert error.startswith(f"ocrmesh: {notes}: ")
    assert "(HTTP 415)" in error


@pytest.mark.parametrize("direct", [False, True], ids=["gateway", "grpc"])
def test_a_token_the_mesh_refuses_exits_3(mesh: Mesh, page: Path, tmp_path: Path, direct: bool) -> None:
    env = cli_env(tmp_path, mesh.gateway_url)
    TokenStore(Path(env["XDG_CONFIG_HOME"]) / "ocrmesh").save(
        SavedLogin(
            url=mesh.gateway_url, email="x@example.com", access_token="garbage", expires_at=time.time() + 600
        )
    )
    grpc_args = ["--grpc", "--ocr-addr", mesh.ocr_addr] if direct else []
    done = ocrmesh(env, "ocr", *grpc_args, str(page))
    assert done.returncode == 3, done.stderr
    assert done.stdout == ""
    assert len(done.stderr.splitlines()) == 1
    assert "ocrmesh login" in done.stderr


def test_ocr_without_a_login_exits_3(mesh: Mesh, page: Path, tmp_path: Path) -> None:
    done = ocrmesh(cli_env(tmp_path, mesh.gateway_url), "ocr", str(page))
    assert (done.returncode, done.stderr) == (3, "ocrmesh: not logged in: run `ocrmesh login EMAIL` first\n")


def test_a_gateway_where_nothing_listens_exits_5(tmp_path: Path) -> None:
    env = cli_env(tmp_path, f"http://127.0.0.1:{free_port()}")
    done = ocrmesh(env, "login", "ada@example.com", "--password-stdin", stdin=PASSWORD + "\n", timeout=60)
    assert done.returncode == 5, done.stderr
    assert done.stderr.startswith("ocrmesh: cannot reach the gateway at http://127.0.0.1:")
    assert len(done.stderr.splitlines()) == 1


@pytest.mark.parametrize(
    "args",
    [
        ["ocr"],
        ["ocr", "missing.png"],
        ["ocr", "--concurrency", "17", "PAGE"],
        ["ocr", "--json", "--text", "PAGE"],
        ["me", "--url", "ftp://example.com"],
        ["login", "not-an-email", "--password-stdin"],
        ["no-such-command"],
    ],
)
def test_usage_errors_exit_2(tmp_path: Path, page: Path, args: list[str]) -> None:
    env = cli_env(tmp_path, "http://127.0.0.1:9")
    done = ocrmesh(env, *(str(page) if a == "PAGE" else a for a in args), stdin="x\n", timeout=60)
    assert done.returncode == 2, (done.stdout, done.stderr)
    assert "Traceback" not in done.stderr
