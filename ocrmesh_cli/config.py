"""Where `ocrmesh login` keeps the token: `token.json` in the user's config directory
(platformdirs: `$XDG_CONFIG_HOME/ocrmesh`, else `~/.config/ocrmesh` on Linux), readable by
the user only (directory 0700, file 0600), replaced atomically so a reader never sees half
a file."""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Final

from platformdirs import user_config_path

from ocrmesh_cli.errors import CliError, ExitCode

APP_NAME: Final = "ocrmesh"
TOKEN_FILE: Final = "token.json"  # noqa: S105 - a file name
# A token file is a few hundred bytes; anything much larger is not ours.
MAX_TOKEN_FILE_BYTES: Final = 64 * 1024
# A token that expires within this many seconds is treated as expired already.
EXPIRY_MARGIN_SECONDS: Final = 5.0

_NOT_LOGGED_IN = "not logged in: run `ocrmesh login EMAIL` first"


def config_dir() -> Path:
    """The user's ocrmesh config directory (honours XDG_CONFIG_HOME)."""
    return user_config_path(APP_NAME, appauthor=False)


@dataclass(frozen=True)
class SavedLogin:
    """A token from `login`, with the gateway that issued it and when it expires."""

    url: str
    email: str
    access_token: str
    expires_at: float  # Unix time

    def expired(self, now: float | None = None) -> bool:
        return (time.time() if now is None else now) >= self.expires_at - EXPIRY_MARGIN_SECONDS


class TokenStore:
    """The saved login of this user, in `directory` (default: `config_dir()`)."""

    def __init__(self, directory: Path | None = None) -> None:
        self.directory = directory if directory is not None else config_dir()

    @property
    def path(self) -> Path:
        return self.directory / TOKEN_FILE

    def save(self, login: SavedLogin) -> Path:
        """Write `login` with mode 0600, atomically (a temporary file renamed over the old)."""
        self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        data = json.dumps(asdict(login), indent=2).encode() + b"\n"
        # mkstemp creates the file 0600 from the start: the token is never readable by others.
        fd, temporary = tempfile.mkstemp(dir=self.directory, prefix=".token-", suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as file:
                os.fchmod(file.fileno(), 0o600)
                file.write(data)
                file.flush()
                os.fsync(file.fileno())
            os.replace(temporary, self.path)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(temporary)
            raise
        return self.path

    def load(self) -> SavedLogin | None:
        """The saved login, or None when there is none. Raises CliError (auth) when the
        file is not one this program wrote."""
        try:
            with self.path.open("rb") as file:
                raw = file.read(MAX_TOKEN_FILE_BYTES + 1)
        except FileNotFoundError:
            return None
        except OSError as exc:
            message = f"cannot read the saved login {self.path}: {exc.strerror}"
            raise CliError(ExitCode.AUTH, message) from None
        try:
            if len(raw) > MAX_TOKEN_FILE_BYTES:
                raise ValueError("too large")
            data = json.loads(raw)
            login = SavedLogin(
                url=str(data["url"]),
                email=str(data["email"]),
                access_token=str(data["access_token"]),
                expires_at=float(data["expires_at"]),
            )
        except (ValueError, TypeError, KeyError):
            raise CliError(
                ExitCode.AUTH, f"the saved login {self.path} is unreadable: run `ocrmesh login EMAIL` again"
            ) from None
        if not login.access_token:
            return None
        return login

    def require(self) -> SavedLogin:
        """The saved login, unexpired. Raises CliError (auth) otherwise."""
        login = self.load()
        if login is None:
            raise CliError(ExitCode.AUTH, _NOT_LOGGED_IN)
        if login.expired():
            raise CliError(ExitCode.AUTH, f"the login of {login.email} expired: run `ocrmesh login` again")
        return login

    def clear(self) -> bool:
        """Delete the saved login; False when there was none."""
        try:
            self.path.unlink()
        except FileNotFoundError:
            return False
        return True
