from __future__ import annotations

import pytest

from ocrmesh.platform.request_context import accept_request_id
from ocrmesh.platform.settings import ServiceSettings, load_settings


class ExampleSettings(ServiceSettings):
    example_port: int = 1234


def test_settings_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EXAMPLE_PORT", "4321")
    monkeypatch.setenv("LOG_LEVEL", "DEBUG")
    settings = load_settings(ExampleSettings)
    assert settings.example_port == 4321
    assert settings.log_level == "DEBUG"


def test_a_bad_value_stops_start_up_with_a_readable_message(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("EXAMPLE_PORT", "not-a-port")
    with pytest.raises(SystemExit) as stopped:
        load_settings(ExampleSettings)
    assert stopped.value.code == 2
    err = capsys.readouterr().err
    assert "EXAMPLE_PORT" in err
    assert "Traceback" not in err


def test_request_ids_from_callers_are_kept_only_when_sane() -> None:
    assert accept_request_id("abc-123_x.y:z") == "abc-123_x.y:z"
    for bad in (None, "", "with space", "x" * 129, "nl\n"):
        fresh = accept_request_id(bad)
        assert fresh != bad
        assert len(fresh) == 32
