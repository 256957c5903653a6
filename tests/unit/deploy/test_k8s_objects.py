"""deploy/k8s as Kubernetes objects: valid against the 1.32 schemas, replicas per overlay,
limits, non-root pods, autoscaling, disruption budgets, and Secrets that hold no committed
value."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import kubernetes_validate  # type: ignore[import-untyped]
import pytest

from auth_svc.keys import load_private_key
from harness.deployment import ROOT
from harness.k8s import (
    BASE,
    DEPLOYMENTS,
    DEV_SECRETS_ENV,
    DEV_SECRETS_EXAMPLE,
    DEV_SIGNING_KEY,
    K8S_DIR,
    KUBERNETES_VERSION,
    OVERLAYS,
    Rendered,
    containers,
    label_selector,
    only_container,
    pod_labels,
    pod_spec,
    read_env_file,
    selects,
)

RENDERINGS = (BASE, *OVERLAYS)
CPU_UNITS = {"m": 0.001}
MEMORY_UNITS = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30}


def cpu_cores(quantity: str | int) -> float:
    text = str(quantity)
    return float(text[:-1]) * CPU_UNITS["m"] if text.endswith("m") else float(text)


def memory_bytes(quantity: str | int) -> int:
    text = str(quantity)
    for suffix, factor in MEMORY_UNITS.items():
        if text.endswith(suffix):
            return int(float(text[: -len(suffix)]) * factor)
    return int(text)


def object_id(obj: dict[str, Any]) -> str:
    return f"{obj['kind']}/{obj['metadata']['name']}"


@pytest.mark.parametrize("name", RENDERINGS)
def test_every_rendered_object_is_valid_kubernetes_1_32_in_strict_mode(
    name: str, rendered: dict[str, Rendered]
) -> None:
    # Strict: an unknown or misspelt field is an error, not something the API server drops.
    objects = rendered[name].objects
    assert objects
    for obj in objects:
        try:
            version = kubernetes_validate.validate(obj, KUBERNETES_VERSION, strict=True)
        except kubernetes_validate.ValidationError as error:
            pytest.fail(f"{name}: {object_id(obj)}: {error.message} at {list(error.path)}")
        assert version == KUBERNETES_VERSION


def test_the_validator_refuses_a_misspelt_field() -> None:
    # The test above proves something only if strict mode catches what kubectl apply would reject.
    broken = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "x"}, "spec": {"selctor": {}}}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, KUBERNETES_VERSION, strict=True)


@pytest.mark.parametrize("name", RENDERINGS)
def test_the_four_services_run_as_deployments(name: str, rendered: dict[str, Rendered]) -> None:
    names = {obj["metadata"]["name"] for obj in rendered[name].of_kind("Deployment")}
    assert set(DEPLOYMENTS.values()) <= names


@pytest.mark.parametrize("name", OVERLAYS)
def test_every_overlay_puts_everything_in_its_namespace(name: str, rendered: dict[str, Rendered]) -> None:
    objects = rendered[name].objects
    (namespace,) = rendered[name].of_kind("Namespace")
    for obj in objects:
        if obj["kind"] != "Namespace":
            assert obj["metadata"].get("namespace") == namespace["metadata"]["name"], object_id(obj)


def replicas(rendered: Rendered, deployment: str) -> tuple[int, int]:
    """(least, most) pods of a Deployment: its replicas, or its autoscaler's range."""
    scalers = [
        hpa
        for hpa in rendered.of_kind("HorizontalPodAutoscaler")
        if hpa["spec"]["scaleTargetRef"]
        == {"apiVersion": "apps/v1", "kind": "Deployment", "name": deployment}
    ]
    spec = rendered.get("Deployment", deployment)["spec"]
    if scalers:
        # Both would fight: every apply resets the count the autoscaler chose.
        assert "replicas" not in spec, f"{deployment} has an autoscaler and fixed replicas"
        (hpa,) = scalers
        return int(hpa["spec"].get("minReplicas", 1)), int(hpa["spec"]["maxReplicas"])
    count = int(spec.get("replicas", 1))
    return count, count


def test_dev_runs_one_pod_of_each_service(rendered: dict[str, Rendered]) -> None:
    dev = rendered["dev"]
    for deployment in dev.of_kind("Deployment"):
        assert replicas(dev, deployment["metadata"]["name"]) == (1, 1), deployment["metadata"]["name"]
    for stateful in dev.of_kind("StatefulSet"):
        assert stateful["spec"]["replicas"] == 1, stateful["metadata"]["name"]


def test_prod_runs_several_pods_of_each_service(rendered: dict[str, Rendered]) -> None:
    for deployment in DEPLOYMENTS.values():
        least, most = replicas(rendered["prod"], deployment)
        assert least > 1, f"{deployment}: one pod is a single point of failure"
        assert most >= least


def test_ocr_svc_scales_with_cpu_between_bounds(rendered: dict[str, Rendered]) -> None:
    for name in RENDERINGS:
        hpa = rendered[name].get("HorizontalPodAutoscaler", "ocr-svc")
        assert hpa["apiVersion"] == "autoscaling/v2"
        assert hpa["spec"]["scaleTargetRef"]["name"] == DEPLOYMENTS["ocr"]
        (metric,) = hpa["spec"]["metrics"]
        assert metric["type"] == "Resource"
        assert metric["resource"]["name"] == "cpu"
        assert 0 < metric["resource"]["target"]["averageUtilization"] <= 100
        # Utilization is measured against the request: without one the HPA cannot act.
        ocr = only_container(rendered[name].get("Deployment", DEPLOYMENTS["ocr"]))
        assert cpu_cores(ocr["resources"]["requests"]["cpu"]) > 0


@pytest.mark.parametrize("name", RENDERINGS)
def test_every_container_has_requests_within_limits(name: str, rendered: dict[str, Rendered]) -> None:
    for workload in rendered[name].workloads():
        for container in containers(workload):
            where = f"{name}: {workload['metadata']['name']}/{container['name']}"
            resources = container.get("resources") or {}
            requests, limits = resources.get("requests") or {}, resources.get("limits") or {}
            assert set(requests) >= {"cpu", "memory"}, f"{where} requests {sorted(requests)}"
            assert set(limits) >= {"cpu", "memory"}, f"{where} limits {sorted(limits)}"
            assert cpu_cores(requests["cpu"]) <= cpu_cores(limits["cpu"]), where
            assert memory_bytes(requests["memory"]) <= memory_bytes(limits["memory"]), where


@pytest.mark.parametrize("name", RENDERINGS)
def test_every_pod_runs_as_a_non_root_user_without_privileges(
    name: str, rendered: dict[str, Rendered]
) -> None:
    for workload in rendered[name].workloads():
        spec = pod_spec(workload)
        pod_context = spec.get("securityContext") or {}
        assert spec.get("automountServiceAccountToken") is False, workload["metadata"]["name"]
        for container in containers(workload):
            where = f"{name}: {workload['metadata']['name']}/{container['name']}"
            context = {**pod_context, **(container.get("securityContext") or {})}
            assert context.get("runAsNonRoot") is True, where
            assert int(context.get("runAsUser", 0)) > 0, where
            assert context.get("allowPrivilegeEscalation") is False, where
            assert context.get("capabilities", {}).get("drop") == ["ALL"], where
            assert not context.get("privileged"), where
            assert (context.get("seccompProfile") or {}).get("type") == "RuntimeDefault", where


@pytest.mark.parametrize("name", RENDERINGS)
def test_the_services_run_as_the_image_user_on_a_read_only_root(
    name: str, rendered: dict[str, Rendered]
) -> None:
    for deployment in DEPLOYMENTS.values():
        workload = rendered[name].get("Deployment", deployment)
        # The Dockerfile's USER: files the image made writable (/app/var) belong to it.
        assert pod_spec(workload)["securityContext"]["runAsUser"] == 10001
        assert only_container(workload)["securityContext"]["readOnlyRootFilesystem"] is True


@pytest.mark.parametrize("name", RENDERINGS)
def test_each_disruption_budget_covers_exactly_one_deployment(
    name: str, rendered: dict[str, Rendered]
) -> None:
    budgets = rendered[name].of_kind("PodDisruptionBudget")
    covered = []
    for budget in budgets:
        selector = label_selector(budget["spec"]["selector"])
        assert selector, f"{budget['metadata']['name']} selects every pod"
        matched = [
            w["metadata"]["name"] for w in rendered[name].workloads() if selects(selector, pod_labels(w))
        ]
        assert len(matched) == 1, f"{budget['metadata']['name']} selects {matched}"
        # maxUnavailable: a one-pod dev Deployment can still be drained (minAvailable 1 could not).
        assert budget["spec"].get("maxUnavailable") == 1
        covered += matched
    assert sorted(covered) == sorted(DEPLOYMENTS.values())


# ---- Secrets


@pytest.mark.parametrize("name", [BASE, "prod"])
def test_base_and_prod_hold_no_secret_objects(name: str, rendered: dict[str, Rendered]) -> None:
    # They only name the Secrets; the operator creates them (kubectl create secret).
    assert rendered[name].of_kind("Secret") == []


def test_the_dev_secrets_come_from_files_git_ignores() -> None:
    tracked = subprocess.run(
        ["git", "ls-files", str(K8S_DIR)], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout.split()
    assert (K8S_DIR / DEV_SECRETS_EXAMPLE).is_file()
    for local in (DEV_SECRETS_ENV, DEV_SIGNING_KEY):
        assert f"deploy/k8s/{local}" not in tracked
        ignored = subprocess.run(
            ["git", "check-ignore", "-q", f"deploy/k8s/{local}"], cwd=ROOT, capture_output=True, check=False
        )
        assert ignored.returncode == 0, f"deploy/k8s/{local} is not gitignored"
    assert not [path for path in tracked if path.endswith((".pem", ".key", "secrets.env"))]


def test_the_dev_secrets_example_holds_placeholders_that_agree() -> None:
    example = read_env_file(K8S_DIR / DEV_SECRETS_EXAMPLE)
    assert set(example) == {"POSTGRES_PASSWORD", "RABBITMQ_PASSWORD", "DATABASE_URL", "RABBITMQ_URL"}
    for name in ("POSTGRES_PASSWORD", "RABBITMQ_PASSWORD"):
        assert example[name].startswith("change-me"), f"{name} must be a placeholder, not a password"
    assert f":{example['POSTGRES_PASSWORD']}@" in example["DATABASE_URL"]
    assert f":{example['RABBITMQ_PASSWORD']}@" in example["RABBITMQ_URL"]


def readme_dev_secret_commands() -> list[str]:
    """The README's commands that make the dev overlay's secret files (run in its directory)."""
    readme = (ROOT / "README.md").read_text()
    section = readme[readme.index("## Kubernetes") :]
    block = section[
        section.index("```sh\n") + len("```sh\n") : section.index("```", section.index("```sh\n") + 5)
    ]
    lines = block.splitlines()
    assert lines[0] == "cd deploy/k8s/overlays/dev"
    assert lines[-2] == "cd - && kubectl apply -k deploy/k8s/overlays/dev"
    return lines[1:-2]


@pytest.mark.skipif(shutil.which("openssl") is None, reason="openssl is not installed")
def test_the_readme_commands_make_dev_secrets_with_fresh_passwords_and_a_signing_key(tmp_path: Path) -> None:
    shutil.copyfile(K8S_DIR / DEV_SECRETS_EXAMPLE, tmp_path / Path(DEV_SECRETS_EXAMPLE).name)
    script = "set -eu\n" + "\n".join(readme_dev_secret_commands())
    subprocess.run(["bash", "-c", script], cwd=tmp_path, check=True, capture_output=True, timeout=60)
    made = read_env_file(tmp_path / Path(DEV_SECRETS_ENV).name)
    example = read_env_file(K8S_DIR / DEV_SECRETS_EXAMPLE)
    assert set(made) == set(example)
    assert "change-me" not in "".join(made.values())
    for password, url in (("POSTGRES_PASSWORD", "DATABASE_URL"), ("RABBITMQ_PASSWORD", "RABBITMQ_URL")):
        assert re.fullmatch(r"[0-9a-f]{32}", made[password]), "letters and digits only: it goes into a URL"
        assert unquote(urlsplit(made[url]).password or "") == made[password]
    assert made["POSTGRES_PASSWORD"] != made["RABBITMQ_PASSWORD"]
    load_private_key(tmp_path / Path(DEV_SIGNING_KEY).name)  # an Ed25519 key auth_svc accepts
