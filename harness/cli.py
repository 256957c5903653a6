"""Running the `ocrmesh` console script as a user would: a subprocess with its own HOME and
config directory (XDG_CONFIG_HOME), pointed at a mesh."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

# The console script of this virtual environment (`pip install .` puts it next to python).
OCRMESH = Path(sys.executable).with_name("ocrmesh")


def cli_env(home: Path, gateway_url: str) -> dict[str, str]:
    """This process's environment without anything that would point the CLI elsewhere
    (gateway, ocr_svc address, config directory, gRPC TLS files)."""
    env = {k: v for k, v in os.environ.items() if k not in ("OCRMESH_URL", "OCR_ADDR", "XDG_CONFIG_HOME")}
    env = {k: v for k, v in env.items() if not k.startswith("GRPC_TLS_")}
    env.update(HOME=str(home), XDG_CONFIG_HOME=str(home / "config"), OCRMESH_URL=gateway_url)
    return env


def ocrmesh(
    env: dict[str, str], *args: str, stdin: str = "", timeout: float = 180
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(OCRMESH), *args],
        env=env,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
