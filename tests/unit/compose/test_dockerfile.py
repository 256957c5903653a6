"""The Dockerfile and .dockerignore held against the tree, the lock file and compose."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from harness.deployment import (
    ROOT,
    Instruction,
    compose_env,
    copies,
    dockerfile_instructions,
    dockerfile_stages,
    global_args,
    in_build_context,
    interpolate,
    load_compose,
    makefile_uv_version,
    pyproject,
    raw_compose_text,
    references,
    services,
)
from ocr_svc.languages import CATALOGUE


@pytest.fixture(scope="module")
def svc() -> dict[str, dict[str, Any]]:
    return services(load_compose(compose_env()))


def runtime_stage_instructions() -> list[Instruction]:
    return dockerfile_stages()[-1].instructions


def run_commands(instructions: list[Instruction]) -> str:
    return "\n".join(i.args for i in instructions if i.keyword == "RUN")


def test_the_image_is_built_in_stages_and_the_runtime_takes_only_the_environment() -> None:
    stages = dockerfile_stages()
    assert len(stages) >= 2
    build, runtime = stages[0], stages[-1]
    assert build.name == "build"
    assert runtime.name == "runtime"
    assert [(c.from_stage, c.sources) for c in copies(runtime)] == [("build", ["/app/.venv"])]
    # No compilers, no uv, no build tools in the runtime stage.
    assert "uv " not in run_commands(runtime.instructions)
    assert "pip install" not in run_commands(runtime.instructions)


def test_both_stages_use_the_same_python_so_the_environment_runs_where_it_was_built() -> None:
    bases = {stage.base for stage in dockerfile_stages()}
    assert bases == {"${PYTHON_IMAGE}"}
    image = global_args()["PYTHON_IMAGE"]
    match = re.fullmatch(r"python:(\d+)\.(\d+)-slim(?:-\w+)?", image)
    assert match, f"a slim Python image, with the minor version pinned: {image}"
    assert pyproject()["project"]["requires-python"] == ">=3.11,<3.13"
    assert (3, 11) <= (int(match[1]), int(match[2])) < (3, 13)


def test_the_service_runs_as_an_unprivileged_user() -> None:
    users = [i.args for i in runtime_stage_instructions() if i.keyword == "USER"]
    assert users, "no USER: the service would run as root"
    user = users[-1].split(":")[0]
    assert user not in ("root", "0")
    assert f"--uid {user}" in run_commands(runtime_stage_instructions())


def test_python_output_is_unbuffered_and_the_environment_is_on_the_path() -> None:
    env = " ".join(i.args for i in runtime_stage_instructions() if i.keyword == "ENV")
    assert "PYTHONUNBUFFERED=1" in env.split()
    assert "PATH=/app/.venv/bin:$PATH" in env.split()


def test_dependencies_come_from_the_lock_file_without_dev_tools() -> None:
    commands = [
        i.args for i in dockerfile_stages()[0].instructions if i.keyword == "RUN" and "uv sync" in i.args
    ]
    assert len(commands) == 2, "dependencies first (cached), then the project"
    for cmd in commands:
        assert "--frozen" in cmd.split(), "--frozen: install what uv.lock says, never re-resolve"
        assert "--no-dev" in cmd.split()
    assert "--no-install-project" in commands[0].split()
    assert "--no-editable" in commands[1].split(), "the runtime stage copies the environment alone"
    # The lock must be in the image before the first sync reads it.
    first_copy = next(c for c in copies(dockerfile_stages()[0]) if c.from_stage is None)
    assert {"pyproject.toml", "uv.lock"} <= set(first_copy.sources)


def test_the_image_uses_the_uv_the_makefile_pins() -> None:
    pins = re.findall(r"uv==(\S+)", run_commands(dockerfile_stages()[0].instructions))
    assert pins == [makefile_uv_version()]


def test_every_path_the_dockerfile_copies_exists_and_reaches_the_builder() -> None:
    for stage in dockerfile_stages():
        for copy in copies(stage):
            if copy.from_stage is not None:
                continue
            for source in copy.sources:
                assert (ROOT / source).exists(), f"COPY {source}: no such path"
                assert in_build_context(source), f"COPY {source}: excluded by .dockerignore"


def test_the_image_gets_every_package_the_wheel_is_built_from() -> None:
    copied = {
        source
        for stage in dockerfile_stages()
        for c in copies(stage)
        if not c.from_stage
        for source in c.sources
    }
    project = pyproject()
    packages = set(project["tool"]["hatch"]["build"]["targets"]["wheel"]["packages"])
    # hatchling also reads the readme named in pyproject.toml.
    assert packages | {project["project"]["readme"]} <= copied


def test_every_file_of_the_copied_packages_reaches_the_builder_but_no_cache() -> None:
    packages = pyproject()["tool"]["hatch"]["build"]["targets"]["wheel"]["packages"]
    checked = 0
    for package in packages:
        for path in (ROOT / package).rglob("*"):
            relative = path.relative_to(ROOT).as_posix()
            if "__pycache__" in path.parts or path.suffix in (".pyc", ".pyo"):
                assert not in_build_context(relative), relative
            elif path.is_file():
                assert in_build_context(relative), relative
                checked += 1
    assert checked > 50


@pytest.mark.parametrize(
    "path", [".env", "var/keys/auth_signing_key.pem", "var/mail", ".venv", ".git", "tests", "node_modules"]
)
def test_secrets_and_local_state_stay_out_of_the_build_context(path: str) -> None:
    assert not in_build_context(path)


def test_compose_passes_only_build_arguments_the_dockerfile_declares(svc: dict[str, dict[str, Any]]) -> None:
    declared = {i.args.split("=", 1)[0] for i in dockerfile_instructions() if i.keyword == "ARG"}
    for name, service in svc.items():
        if "build" in service:
            assert set(service["build"].get("args", {})) <= declared, name
            assert service["build"]["dockerfile"] == "Dockerfile"


def test_every_extra_an_image_is_built_with_exists(svc: dict[str, dict[str, Any]]) -> None:
    extras = set(pyproject()["project"]["optional-dependencies"])
    for name, service in svc.items():
        if "build" in service:
            wanted = set(service["build"]["args"]["EXTRAS"].split())
            assert wanted <= extras, f"{name}: {sorted(wanted - extras)} is no extra in pyproject.toml"


def test_a_build_argument_adds_the_keras_engine_to_the_ocr_image() -> None:
    # OCR_EXTRAS picks the ocr image's extras; the default is the RapidOCR engine alone.
    ocr_build = load_compose(compose_env())["services"]["ocr"]["build"]["args"]["EXTRAS"]
    assert ocr_build.split() == ["ocr", "tesseract"]
    with_keras = load_compose({**compose_env(), "OCR_EXTRAS": "ocr keras"})
    assert with_keras["services"]["ocr"]["build"]["args"]["EXTRAS"].split() == ["ocr", "keras"]
    assert "keras" in pyproject()["project"]["optional-dependencies"]
    assert any(r.name == "OCR_EXTRAS" for r in references(raw_compose_text()))
    # The Dockerfile turns each word of EXTRAS into an --extra for both syncs.
    syncs = [i.args for i in dockerfile_instructions() if i.keyword == "RUN" and "uv sync" in i.args]
    assert all("for extra in $EXTRAS" in cmd and "--extra" in cmd for cmd in syncs)


def test_the_ocr_image_carries_tesseract_and_a_model_for_every_language_it_lists(
    svc: dict[str, dict[str, Any]],
) -> None:
    # The languages besides English are read by tesserocr with Debian's traineddata
    # (tesseract-ocr-<model>); a language whose model is missing is silently not offered.
    args = svc["ocr"]["build"]["args"]
    assert "tesseract" in args["EXTRAS"].split()
    assert "tesseract" in pyproject()["project"]["optional-dependencies"]
    wanted = {f"tesseract-ocr-{language.model}" for language in CATALOGUE.values()}
    assert wanted <= set(args["APT_PACKAGES"].split())


def test_only_the_ocr_image_installs_system_packages(svc: dict[str, dict[str, Any]]) -> None:
    for name, service in svc.items():
        if "build" in service and name != "ocr":
            assert not service["build"]["args"].get("APT_PACKAGES", "").split(), name


def test_system_packages_are_installed_lean_in_the_runtime_stage_only() -> None:
    runtime = runtime_stage_instructions()
    assert any(i.keyword == "ARG" and i.args.split("=", 1)[0] == "APT_PACKAGES" for i in runtime)
    installs = [i.args for i in runtime if i.keyword == "RUN" and "apt-get install" in i.args]
    assert len(installs) == 1
    command = installs[0]
    assert "--no-install-recommends $APT_PACKAGES" in command
    assert 'if [ -n "$APT_PACKAGES" ]' in command, "images without packages skip apt-get entirely"
    # The lists go in the same layer, or the image keeps them.
    assert command.index("apt-get update") < command.index("rm -rf /var/lib/apt/lists/*")
    assert "apt-get" not in run_commands(dockerfile_stages()[0].instructions)


def test_the_default_command_runs_the_service_the_image_was_built_for() -> None:
    runtime = runtime_stage_instructions()
    assert any(i.keyword == "ARG" and i.args.startswith("SERVICE") for i in runtime)
    assert any(i.keyword == "ENV" and "SERVICE=${SERVICE}" in i.args.split() for i in runtime)
    cmd = [i.args for i in runtime if i.keyword == "CMD"][-1]
    assert 'exec python -m \\"$SERVICE\\"' in cmd, "exec: the service is PID 1 and gets SIGTERM itself"


def test_the_places_services_write_to_exist_and_belong_to_the_service_user(
    svc: dict[str, dict[str, Any]],
) -> None:
    runs = run_commands(runtime_stage_instructions())
    made = set(re.findall(r"mkdir -p ([^&]+)", runs)[0].split())
    owned = set(re.findall(r"chown -R \S+ ([^&]+)", runs)[0].split())

    def writable(path: str) -> bool:
        return any(path == d or path.startswith(d.rstrip("/") + "/") for d in owned)

    # Named volumes start with the ownership of the directory they are mounted on.
    for name, service in svc.items():
        if "build" not in service:
            continue
        for entry in service.get("volumes") or []:
            _source, target, *mode = str(entry).split(":")
            if "ro" not in mode:
                assert target in made, f"{name}: {target} is not made in the image"
                assert writable(target), f"{name}: {target} is not writable in the image"
    health_file = interpolate(svc["notifier"]["environment"]["NOTIFIER_HEALTH_FILE"], {})
    assert writable(str(Path(health_file).parent))
