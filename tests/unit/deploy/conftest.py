"""deploy/k8s rendered once per session: the base and every overlay, from a copy of the
checkout with the dev overlay's gitignored inputs made from their examples."""

from __future__ import annotations

import pytest

from harness.k8s import BASE, OVERLAYS, Rendered, checkout_with_dev_inputs, kustomize_command, render


@pytest.fixture(scope="session")
def rendered(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Rendered]:
    """The objects kustomize renders, by name: "base", "dev" and "prod"."""
    if kustomize_command() is None:
        pytest.skip("neither kubectl nor kustomize is installed: the manifests cannot be rendered")
    tree = checkout_with_dev_inputs(tmp_path_factory.mktemp("deploy"))
    found = {BASE: Rendered(BASE, render(tree / BASE))}
    for overlay in OVERLAYS:
        found[overlay] = Rendered(overlay, render(tree / "overlays" / overlay))
    return found


@pytest.fixture(scope="session")
def overlays(rendered: dict[str, Rendered]) -> list[Rendered]:
    return [rendered[name] for name in OVERLAYS]
