"""The saved login: in the user's config directory, readable by the user only, replaced
atomically, and refused (exit 3) when missing, expired or not ours."""

from __future__ import annotations

import stat
import time
from pathlib import Path

import pytest

from ocrmesh_cli.config import SavedLogin, TokenStore, config_dir
from ocrmesh_cli.errors import CliError, ExitCode


def login(expires_in: float = 3600, token: str = "header.payload.signature") -> SavedLogin:
    return SavedLogin(
        url="http://127.0.0.1:8000",
        email="ada@example.com",
        access_token=token,
        expires_at=time.time() + expires_in,
    )


def test_the_config_directory_follows_xdg_config_home(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    assert config_dir() == tmp_path / "xdg" / "ocrmesh"
    assert TokenStore().path == tmp_path / "xdg" / "ocrmesh" / "token.json"


def test_a_saved_token_is_readable_by_its_owner_only(tmp_path: Path) -> None:
    store = TokenStore(tmp_path / "ocrmesh")
    path = store.save(login())
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert store.require().access_token == "header.payload.signature"


def test_saving_again_replaces_the_file_and_leaves_no_temporary_files(tmp_path: Path) -> None:
    store = TokenStore(tmp_path)
    store.save(login(token="first"))
    store.save(login(token="second"))
    assert [p.name for p in tmp_path.iterdir()] == ["token.json"]
    assert store.require().access_token == "second"
    assert stat.S_IMODE(store.path.stat().st_mode) == 0o600


def test_no_saved_login_is_an_auth_failure(tmp_path: Path) -> None:
    store = TokenStore(tmp_path)
    assert store.load() is None
    with pytest.raises(CliError) as raised:
        store.require()
    assert raised.value.code == ExitCode.AUTH
    assert "ocrmesh login" in raised.value.message


def test_an_expired_login_is_refused_without_asking_the_gateway(tmp_path: Path) -> None:
    store = TokenStore(tmp_path)
    store.save(login(expires_in=-1))
    with pytest.raises(CliError) as raised:
        store.require()
    assert raised.value.code == ExitCode.AUTH
    assert "expired" in raised.value.message


@pytest.mark.parametrize("content", [b"not json", b"[]", b'{"url": "x"}', b"{" + b" " * 70_000 + b"}"])
def test_a_token_file_that_is_not_ours_is_an_auth_failure_not_a_traceback(
    tmp_path: Path, content: bytes
) -> None:
    (tmp_path / "token.json").write_bytes(content)
    with pytest.raises(CliError) as raised:
        TokenStore(tmp_path).load()
    assert raised.value.code == ExitCode.AUTH


def test_clearing_forgets_the_login(tmp_path: Path) -> None:
    store = TokenStore(tmp_path)
    store.save(login())
    assert store.clear() is True
    assert store.clear() is False
    assert store.load() is None
