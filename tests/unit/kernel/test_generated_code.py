"""The committed ocrmesh/*/v1 code is exactly what `make protos` generates from protos/."""

from __future__ import annotations

import filecmp
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]
GENERATED_SUFFIXES = ("_pb2.py", "_pb2.pyi", "_pb2_grpc.py", "_pb2_grpc.pyi", "_grpc_service_config.json")


def generated_files(root: Path) -> set[str]:
    return {
        str(p.relative_to(root))
        for p in (root / "ocrmesh").rglob("*")
        if p.is_file() and p.parent.name == "v1" and p.name.endswith(GENERATED_SUFFIXES)
    }


def test_regenerating_the_stubs_changes_nothing(tmp_path: Path) -> None:
    subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "gen_protos.py"), "--out", str(tmp_path)],
        check=True,
        capture_output=True,
    )
    fresh = generated_files(tmp_path)
    committed = generated_files(ROOT)
    assert fresh == committed, "generated file set differs: run `make protos` and commit"
    stale = [f for f in sorted(fresh) if not filecmp.cmp(tmp_path / f, ROOT / f, shallow=False)]
    assert not stale, f"stale generated code (run `make protos`): {stale}"


def test_every_proto_has_generated_python() -> None:
    protos = sorted((ROOT / "protos").rglob("*.proto"))
    assert protos
    for proto in protos:
        stem = proto.relative_to(ROOT / "protos").with_suffix("")
        assert (ROOT / f"{stem}_pb2.py").exists(), f"{proto} has no generated module"
