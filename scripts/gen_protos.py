"""Generate the Python gRPC/protobuf code in ocrmesh/ from protos/ (`make protos`).

A service's gRPC service config (`<name>_grpc_service_config.json` beside its proto, as
googleapis keeps them: which methods clients retry) is copied next to the generated code,
where `ocrmesh.platform.grpc_client` reads it.

The output is committed; `tests/unit/test_generated_code.py` regenerates into a temporary
folder and fails when the committed files differ.
"""

from __future__ import annotations

import argparse
import shutil
import sys
from importlib import resources
from pathlib import Path

from grpc_tools import protoc

ROOT = Path(__file__).resolve().parent.parent
PROTOS = ROOT / "protos"


def proto_files() -> list[Path]:
    return sorted(PROTOS.rglob("*.proto"))


def service_configs() -> list[Path]:
    return sorted(PROTOS.rglob("*_grpc_service_config.json"))


def generate(out_dir: Path) -> None:
    """Run protoc for every proto under protos/, writing packages below out_dir."""
    well_known = resources.files("grpc_tools") / "_proto"
    files = [str(p.relative_to(PROTOS)) for p in proto_files()]
    # mypy-protobuf's plugin types the gRPC stubs and servicers (sync and grpc.aio).
    mypy_grpc = shutil.which("protoc-gen-mypy_grpc") or str(
        Path(sys.executable).parent / "protoc-gen-mypy_grpc"
    )
    args = [
        "grpc_tools.protoc",
        f"-I{PROTOS}",
        f"-I{well_known}",
        f"--python_out={out_dir}",
        f"--pyi_out={out_dir}",
        f"--grpc_python_out={out_dir}",
        f"--plugin=protoc-gen-mypy_grpc={mypy_grpc}",
        f"--mypy_grpc_out={out_dir}",
        *files,
    ]
    if protoc.main(args) != 0:
        raise SystemExit("protoc failed")
    # Every generated folder must be an importable package.
    for proto in files:
        pkg = (out_dir / proto).parent
        while pkg != out_dir and pkg.is_relative_to(out_dir):
            init = pkg / "__init__.py"
            if not init.exists():
                init.write_text("")
            pkg = pkg.parent
    for config in service_configs():
        target = out_dir / config.relative_to(PROTOS)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(config, target)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path, default=ROOT, help="output root (default: repo root)")
    out = parser.parse_args().out
    out.mkdir(parents=True, exist_ok=True)
    generate(out)
    sys.stderr.write(f"generated {len(proto_files())} protos into {out}\n")


if __name__ == "__main__":
    main()
