"""Renders deploy/k8s with kustomize (through kubectl) and reads the objects the way the
cluster would: a container's environment with its ConfigMaps and Secrets resolved, what a
Service or policy selects. No cluster is needed."""

from __future__ import annotations

import base64
import shutil
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from auth_svc.keys import generate_key_file
from harness.deployment import AppService
from harness.repo import ROOT

K8S_DIR = ROOT / "deploy" / "k8s"
BASE = "base"
OVERLAYS = ("dev", "prod")
KUBERNETES_VERSION = "1.32"

# The dev overlay's files that the user makes and git ignores, and the example each comes from.
DEV_SECRETS_ENV = "overlays/dev/secrets.env"
DEV_SECRETS_EXAMPLE = "overlays/dev/secrets.env.example"
DEV_SIGNING_KEY = "overlays/dev/auth_signing_key.pem"

# The Deployment of each compose service (harness.deployment.APP_SERVICES).
DEPLOYMENTS = {"auth": "auth-svc", "ocr": "ocr-svc", "notifier": "notifier", "gateway": "gateway"}

# What the prod Secrets hold, standing in for the ones `kubectl create secret` makes.
SAMPLE_SECRET_DATA = {
    "DATABASE_URL": "postgresql+psycopg2://ocrmesh:pgsecret123@db.example.com:5432/ocrmesh",
    "RABBITMQ_URL": "amqps://ocrmesh:mqsecret456@mq.example.com:5671/%2F",
    "SMTP_PASSWORD": "smtpsecret789",
}

Object = dict[str, Any]


def kustomize_command() -> list[str] | None:
    """How to run kustomize here: kubectl's built-in one, or the standalone binary; None
    when neither is installed."""
    if shutil.which("kubectl"):
        return ["kubectl", "kustomize"]
    if shutil.which("kustomize"):
        return ["kustomize", "build"]
    return None


def checkout_with_dev_inputs(destination: Path) -> Path:
    """A copy of deploy/k8s at `destination` with the dev overlay's gitignored inputs made
    as the README says: secrets.env from its example, and a fresh signing key."""
    tree = destination / "k8s"
    shutil.copytree(K8S_DIR, tree, ignore=shutil.ignore_patterns("secrets.env", "*.pem"))
    shutil.copyfile(tree / DEV_SECRETS_EXAMPLE, tree / DEV_SECRETS_ENV)
    generate_key_file(tree / DEV_SIGNING_KEY)
    return tree


def render(directory: Path) -> list[Object]:
    """`kustomize build directory`, as objects."""
    command = kustomize_command()
    assert command is not None, "no kubectl or kustomize"
    done = subprocess.run(
        [*command, str(directory)], capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr
    return [obj for obj in yaml.safe_load_all(done.stdout) if obj]


def read_env_file(path: Path) -> dict[str, str]:
    """A kustomize `envs:` file: NAME=value lines; blank lines and # comments ignored."""
    found = {}
    for line in path.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            name, _, value = line.partition("=")
            found[name] = value
    return found


@dataclass(frozen=True)
class Rendered:
    """One rendered kustomization."""

    name: str
    objects: list[Object]

    def of_kind(self, kind: str) -> list[Object]:
        return [obj for obj in self.objects if obj["kind"] == kind]

    def get(self, kind: str, name: str) -> Object:
        found = [obj for obj in self.of_kind(kind) if obj["metadata"]["name"] == name]
        assert len(found) == 1, f"{self.name}: expected one {kind} {name}, found {len(found)}"
        return found[0]

    def workloads(self) -> list[Object]:
        """Everything that runs pods."""
        return [obj for obj in self.objects if obj["kind"] in ("Deployment", "StatefulSet")]

    def deployment(self, app: AppService) -> Object:
        return self.get("Deployment", DEPLOYMENTS[app.name])

    def secret_data(self, name: str) -> dict[str, str] | None:
        """The decoded data of the Secret `name` if this rendering holds it, else None."""
        for secret in self.of_kind("Secret"):
            if secret["metadata"]["name"] == name:
                data = secret.get("data") or {}
                return {key: base64.b64decode(value).decode() for key, value in data.items()}
        return None

    def config_map_data(self, name: str) -> dict[str, str]:
        return dict(self.get("ConfigMap", name).get("data") or {})

    def env_from_data(self, source: Mapping[str, Any]) -> dict[str, str]:
        """The variables an `envFrom` ConfigMap source gives; none from an optional map this
        rendering does not hold (the operator's, like the kubelet skips a missing one)."""
        ref = source["configMapRef"]
        if ref.get("optional") and not any(
            obj["metadata"]["name"] == ref["name"] for obj in self.of_kind("ConfigMap")
        ):
            return {}
        return self.config_map_data(ref["name"])

    def environment(self, container: Mapping[str, Any]) -> dict[str, str]:
        """The container's variables as the kubelet would set them. Secrets this rendering
        does not hold (created by the operator) read SAMPLE_SECRET_DATA; an optional key
        missing from a rendered Secret is left unset."""
        env: dict[str, str] = {}
        for source in container.get("envFrom") or []:
            env.update(self.env_from_data(source))
        for var in container.get("env") or []:
            if "value" in var:
                env[var["name"]] = str(var["value"])
                continue
            ref = var["valueFrom"]["secretKeyRef"]
            data = self.secret_data(ref["name"])
            if data is None:
                env[var["name"]] = SAMPLE_SECRET_DATA[ref["key"]]
            elif ref["key"] in data:
                env[var["name"]] = data[ref["key"]]
            else:
                assert ref.get("optional"), f"{var['name']}: Secret {ref['name']} has no key {ref['key']}"
        return env

    def env_names(self, container: Mapping[str, Any]) -> set[str]:
        """Every variable name the container is given, whether or not its source resolves."""
        names = {var["name"] for var in container.get("env") or []}
        for source in container.get("envFrom") or []:
            names |= set(self.env_from_data(source))
        return names


def pod_spec(workload: Mapping[str, Any]) -> dict[str, Any]:
    return dict(workload["spec"]["template"]["spec"])


def pod_labels(workload: Mapping[str, Any]) -> dict[str, str]:
    return dict(workload["spec"]["template"]["metadata"].get("labels") or {})


def containers(workload: Mapping[str, Any]) -> list[dict[str, Any]]:
    spec = pod_spec(workload)
    return [*spec.get("initContainers", []), *spec["containers"]]


def only_container(workload: Mapping[str, Any]) -> dict[str, Any]:
    found = pod_spec(workload)["containers"]
    assert len(found) == 1, f"{workload['metadata']['name']} runs {len(found)} containers"
    return dict(found[0])


def container_ports(container: Mapping[str, Any]) -> dict[str, int]:
    """Port name -> number."""
    return {port["name"]: int(port["containerPort"]) for port in container.get("ports") or []}


def selects(selector: Mapping[str, str], labels: Mapping[str, str]) -> bool:
    """Whether a matchLabels-style selector (an empty one selects everything) picks `labels`."""
    return all(labels.get(key) == value for key, value in selector.items())


def label_selector(selector: Mapping[str, Any]) -> dict[str, str]:
    """A LabelSelector that uses matchLabels only (what ocrmesh writes), as a dict."""
    assert not selector.get("matchExpressions"), "matchExpressions: extend label_selector"
    return dict(selector.get("matchLabels") or {})
