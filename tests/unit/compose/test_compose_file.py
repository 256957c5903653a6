"""docker-compose.yml held against the code: the same commands as `make up`, environment
variables that the settings classes know and accept, ports that agree, healthchecks, start
order, secrets and volumes."""

from __future__ import annotations

import shlex
import shutil
import subprocess
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import unquote, urlsplit

import pytest
import yaml

from harness.deployment import (
    APP_SERVICES,
    COMPOSE_FILE,
    SAMPLE_SECRETS,
    AppService,
    MissingVariable,
    compose_env,
    depends_on,
    env_example,
    environment,
    healthcheck_argv,
    host_of,
    interpolate,
    load_compose,
    mounts,
    procfile,
    published_ports,
    raw_compose_text,
    references,
    seconds,
    services,
    settings_from,
)
from ocrmesh.platform import telemetry

APP_IDS = [app.name for app in APP_SERVICES]
# What docker-compose.yml passes to each service from .env (x-tracing-env).
TRACING_VARIABLES = ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_TRACES_SAMPLER", "OTEL_TRACES_SAMPLER_ARG")
INFRASTRUCTURE = ("postgres", "rabbitmq", "mailpit")
# Metrics and the dashboard (docs/observability.md).
OBSERVABILITY = ("prometheus", "grafana")
# The one-shot that prepares the signing key; it runs to completion, it is not a server.
ONE_SHOTS = ("auth-keys",)

# What each service calls, as the issue lists it.
CALLS = {
    "gateway": {"auth", "ocr"},
    "auth": {"postgres", "rabbitmq"},
    "ocr": {"rabbitmq", "auth"},
    "notifier": {"rabbitmq", "mailpit"},
}


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return load_compose(compose_env())


@pytest.fixture(scope="module")
def svc(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return services(compose)


def test_the_mesh_is_the_four_services_with_postgres_rabbitmq_and_a_mail_catcher(
    svc: dict[str, dict[str, Any]],
) -> None:
    assert set(svc) == {*APP_IDS, *INFRASTRUCTURE, *OBSERVABILITY, *ONE_SHOTS}
    assert svc["postgres"]["image"].startswith("postgres:")
    assert svc["rabbitmq"]["image"].startswith("rabbitmq:")
    assert svc["rabbitmq"]["image"].endswith("-management")
    assert svc["mailpit"]["image"].startswith("axllent/mailpit:")


@pytest.mark.parametrize("app", APP_SERVICES, ids=APP_IDS)
def test_each_service_runs_the_procfile_command(app: AppService, svc: dict[str, dict[str, Any]]) -> None:
    # honcho runs each line through a shell, where `exec` makes the service replace that
    # shell; compose runs the argv directly, so the service is the process that gets SIGTERM
    # either way. A list says the argv exactly (compose splits a string without a shell).
    argv = shlex.split(procfile()[app.name])
    if argv[0] == "exec":
        argv = argv[1:]
    assert svc[app.name]["command"] == argv
    assert svc[app.name]["command"] == ["python", "-m", app.module]


def test_procfile_and_compose_run_the_same_set_of_services() -> None:
    assert set(procfile()) == set(APP_IDS)


@pytest.mark.parametrize("app", APP_SERVICES, ids=APP_IDS)
def test_each_image_is_built_for_the_module_it_runs_with_its_extra(
    app: AppService, svc: dict[str, dict[str, Any]]
) -> None:
    args = svc[app.name]["build"]["args"]
    assert args["SERVICE"] == app.module
    assert app.extra in args["EXTRAS"].split()
    assert svc[app.name]["build"]["context"] == "."


def test_the_key_init_builds_the_same_image_as_auth_svc(svc: dict[str, dict[str, Any]]) -> None:
    # Same tag, same build: whichever compose builds first, both run the same code.
    assert svc["auth-keys"]["image"] == svc["auth"]["image"]
    assert svc["auth-keys"]["build"] == svc["auth"]["build"]
    images = [s["image"] for name, s in svc.items() if "build" in s and name not in ONE_SHOTS]
    assert len(images) == len(set(images)), "two services would overwrite each other's image"


@pytest.mark.parametrize("app", APP_SERVICES, ids=APP_IDS)
def test_every_variable_a_service_is_given_is_one_of_its_settings(
    app: AppService, svc: dict[str, dict[str, Any]]
) -> None:
    # extra="ignore" in the settings would silently drop a misspelt name. OTEL_* are
    # OpenTelemetry's own variables, read by ocrmesh.platform.telemetry and the SDK (tested below).
    known = {name.upper() for name in app.settings.model_fields}
    unknown = {name for name in environment(svc[app.name]) if not name.startswith("OTEL_")} - known
    assert not unknown, f"{app.name} does not read {sorted(unknown)}"


def test_the_key_init_reads_the_variable_auth_svc_reads(svc: dict[str, dict[str, Any]]) -> None:
    keys_env = environment(svc["auth-keys"])
    assert set(keys_env) == {"AUTH_SIGNING_KEY_FILE"}
    assert keys_env["AUTH_SIGNING_KEY_FILE"] == environment(svc["auth"])["AUTH_SIGNING_KEY_FILE"]


@pytest.mark.parametrize("app", APP_SERVICES, ids=APP_IDS)
def test_each_service_accepts_its_compose_environment(
    app: AppService, svc: dict[str, dict[str, Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    env = environment(svc[app.name])
    required = {name.upper() for name, field in app.settings.model_fields.items() if field.is_required()}
    assert required <= set(env), f"{app.name} needs {sorted(required - set(env))}"
    # Validation (types, ranges, cross-field rules such as production needing a key file)
    # passes with exactly what compose gives the container.
    settings_from(app, env, monkeypatch)


@pytest.mark.parametrize("app", APP_SERVICES, ids=APP_IDS)
def test_no_service_keeps_a_default_that_points_at_localhost(
    app: AppService, svc: dict[str, dict[str, Any]]
) -> None:
    # In a container, 127.0.0.1 is the container itself: every default address must be replaced.
    env = environment(svc[app.name])
    local = {
        name.upper()
        for name, field in app.settings.model_fields.items()
        if isinstance(field.default, str) and ("127.0.0.1" in field.default or "localhost" in field.default)
    }
    assert local, "expected the address defaults of DESIGN.md"
    assert local <= set(env), f"{app.name} would call itself: set {sorted(local - set(env))}"
    # Where a gRPC server listens (loopback by default, issue 14): the container's network.
    listen = {name for name in local if name.endswith("_HOST")}
    for name in listen:
        assert env[name] == "0.0.0.0", f"{name} must name the service network, not loopback"
    for name in local - listen:
        assert host_of(env[name]) in svc, f"{name}={env[name]} names no compose service"


def test_grpc_ports_agree_between_servers_clients_healthchecks_and_publishing(
    svc: dict[str, dict[str, Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    servers = {"auth": "auth_port", "ocr": "ocr_port"}
    for app in APP_SERVICES:
        if app.name not in servers:
            continue
        port = getattr(settings_from(app, environment(svc[app.name]), monkeypatch), servers[app.name])
        assert [p.container_port for p in published_ports(svc[app.name])] == [port]
        assert healthcheck_argv(svc[app.name])[-1] == f"127.0.0.1:{port}"
        # Every client of this server dials the same port.
        addr_var = f"{app.name.upper()}_ADDR"
        clients = [name for name, s in svc.items() if addr_var in environment(s)]
        assert clients, f"nobody calls {app.name}?"
        for client in clients:
            assert environment(svc[client])[addr_var] == f"{app.name}:{port}", client


def test_gateway_port_agrees_with_publishing_and_its_healthcheck(
    svc: dict[str, dict[str, Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    gateway = next(app for app in APP_SERVICES if app.name == "gateway")
    settings = settings_from(gateway, environment(svc["gateway"]), monkeypatch)
    port = settings.gateway_port  # type: ignore[attr-defined]
    assert [p.container_port for p in published_ports(svc["gateway"])] == [port]
    assert f"http://127.0.0.1:{port}/healthz" in " ".join(healthcheck_argv(svc["gateway"]))


def test_only_the_gateway_the_web_uis_and_the_grpc_ports_are_published(
    svc: dict[str, dict[str, Any]],
) -> None:
    published = {name: sorted(p.container_port for p in published_ports(s)) for name, s in svc.items()}
    assert {name: ports for name, ports in published.items() if ports} == {
        "gateway": [8000],
        "mailpit": [8025],  # web UI; SMTP 1025 stays inside the network
        "rabbitmq": [15672],  # management UI; AMQP 5672 stays inside
        "auth": [50051],
        "ocr": [50052],
        "prometheus": [9090],
        "grafana": [3000],
    }
    # Debugging ports listen on this machine only; the API is the one public entry.
    for name in ("mailpit", "rabbitmq", "auth", "ocr", *OBSERVABILITY):
        assert all(p.host_ip == "127.0.0.1" for p in published_ports(svc[name])), name


@pytest.mark.parametrize("name", [*APP_IDS, *INFRASTRUCTURE, *OBSERVABILITY])
def test_every_long_running_service_has_a_healthcheck_and_restarts(
    name: str, svc: dict[str, dict[str, Any]]
) -> None:
    assert healthcheck_argv(svc[name]), f"{name} has no healthcheck"
    check = svc[name]["healthcheck"]
    assert seconds(check["timeout"]) <= seconds(check["interval"])
    assert svc[name]["restart"] == "unless-stopped"


def test_healthchecks_use_the_probe_each_kind_of_service_needs(svc: dict[str, dict[str, Any]]) -> None:
    for name in ("auth", "ocr"):
        assert healthcheck_argv(svc[name])[:3] == ["python", "-m", "ocrmesh.platform.health_probe"]
    assert healthcheck_argv(svc["notifier"]) == ["python", "-m", "notifier", "healthcheck"]
    assert "/healthz" in healthcheck_argv(svc["gateway"])[-1]
    assert healthcheck_argv(svc["postgres"])[0] == "pg_isready"
    assert healthcheck_argv(svc["rabbitmq"])[0] == "rabbitmq-diagnostics"
    assert healthcheck_argv(svc["rabbitmq"])[-1] == "ping"
    assert healthcheck_argv(svc["mailpit"]) == ["/mailpit", "readyz"]


def test_one_shots_run_once(svc: dict[str, dict[str, Any]]) -> None:
    for name in ONE_SHOTS:
        assert svc[name]["restart"] == "no"
        assert not healthcheck_argv(svc[name])


@pytest.mark.parametrize("name", list(CALLS))
def test_each_service_waits_until_what_it_calls_is_healthy(name: str, svc: dict[str, dict[str, Any]]) -> None:
    deps = depends_on(svc[name])
    for callee in CALLS[name]:
        assert deps.get(callee) == "service_healthy", f"{name} must wait for {callee}"
    # And the list above is complete: every compose service its settings point at is waited for.
    called = {host_of(value) or "" for value in environment(svc[name]).values()} & set(svc)
    assert called <= set(deps), f"{name} calls {sorted(called - set(deps))} without waiting for it"


def test_dependency_conditions_are_ones_the_dependency_can_reach(svc: dict[str, dict[str, Any]]) -> None:
    for name, service in svc.items():
        for dependency, condition in depends_on(service).items():
            assert dependency in svc, f"{name} depends on unknown {dependency}"
            if condition == "service_healthy":
                assert healthcheck_argv(svc[dependency]), f"{dependency} has no healthcheck"
            else:
                assert condition == "service_completed_successfully"
                assert dependency in ONE_SHOTS


def test_auth_svc_runs_in_production_with_the_key_the_init_wrote(svc: dict[str, dict[str, Any]]) -> None:
    auth_env = environment(svc["auth"])
    # production: no key generated by the server, no database created by it (postgres does).
    assert auth_env["ENVIRONMENT"] == "production"
    assert depends_on(svc["auth"])["auth-keys"] == "service_completed_successfully"
    key_dir = str(PurePosixPath(auth_env["AUTH_SIGNING_KEY_FILE"]).parent)
    init_mounts = {m.target: m for m in mounts(svc["auth-keys"])}
    auth_mounts = {m.target: m for m in mounts(svc["auth"])}
    assert init_mounts[key_dir].source == auth_mounts[key_dir].source == "auth-keys"
    assert not init_mounts[key_dir].read_only
    assert auth_mounts[key_dir].read_only, "auth_svc only reads its key"


def test_the_database_url_matches_the_database_postgres_creates(svc: dict[str, dict[str, Any]]) -> None:
    postgres = environment(svc["postgres"])
    url = urlsplit(environment(svc["auth"])["DATABASE_URL"])
    assert url.scheme == "postgresql+psycopg2"
    assert (url.hostname, url.port) == ("postgres", 5432)
    assert url.username == postgres["POSTGRES_USER"]
    assert unquote(url.password or "") == postgres["POSTGRES_PASSWORD"] == SAMPLE_SECRETS["POSTGRES_PASSWORD"]
    assert url.path.lstrip("/") == postgres["POSTGRES_DB"]


def test_every_broker_client_uses_the_user_rabbitmq_creates(svc: dict[str, dict[str, Any]]) -> None:
    rabbitmq = environment(svc["rabbitmq"])
    clients = [name for name, s in svc.items() if "RABBITMQ_URL" in environment(s)]
    assert set(clients) == {"auth", "ocr", "notifier"}
    urls = {environment(svc[name])["RABBITMQ_URL"] for name in clients}
    assert len(urls) == 1, "the producers and the consumer must reach the same broker and vhost"
    url = urlsplit(urls.pop())
    assert (url.scheme, url.hostname, url.port, url.path) == ("amqp", "rabbitmq", 5672, "/%2F")
    assert url.username == rabbitmq["RABBITMQ_DEFAULT_USER"]
    assert unquote(url.password or "") == rabbitmq["RABBITMQ_DEFAULT_PASS"]


def test_the_notifier_sends_to_the_mail_catcher(svc: dict[str, dict[str, Any]]) -> None:
    notifier_env = environment(svc["notifier"])
    assert notifier_env["SMTP_HOST"] == "mailpit"
    assert notifier_env["SMTP_PORT"] == "1025"  # Mailpit's SMTP port
    assert "SMTP_STARTTLS" not in notifier_env
    assert "SMTP_TLS" not in notifier_env


@pytest.mark.parametrize("app", APP_SERVICES, ids=APP_IDS)
def test_docker_waits_longer_than_the_graceful_shutdown(
    app: AppService, svc: dict[str, dict[str, Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = settings_from(app, environment(svc[app.name]), monkeypatch)
    grace = settings.shutdown_grace_seconds  # type: ignore[attr-defined]
    # ocr_svc drains its server, then its engine workers: up to twice the grace.
    assert seconds(svc[app.name]["stop_grace_period"]) > 2 * grace


def test_named_volumes_hold_the_data_and_the_signing_key(compose: dict[str, Any]) -> None:
    declared = set(compose["volumes"])
    # Bind mounts (./deploy/...: configuration read-only) are files of the checkout, not volumes.
    used = {m.source for s in services(compose).values() for m in mounts(s) if not m.source.startswith(".")}
    assert used == declared, "every named volume is used, every used volume is named"
    svc = services(compose)
    assert {m.target: m.source for m in mounts(svc["postgres"])} == {"/var/lib/postgresql/data": "pgdata"}
    assert {m.target: m.source for m in mounts(svc["rabbitmq"])} == {"/var/lib/rabbitmq": "rabbitmq-data"}
    # RabbitMQ keeps its data under its node name, which comes from the host name.
    assert svc["rabbitmq"]["hostname"] == "rabbitmq"
    ocr_env = environment(svc["ocr"])
    assert {m.target for m in mounts(svc["ocr"])} == {ocr_env["KERAS_OCR_CACHE_DIR"]}


# ---- variables and secrets


def compose_references() -> list[Any]:
    return references(raw_compose_text())


def test_required_secrets_stop_compose_with_a_message_and_are_documented() -> None:
    refs = compose_references()
    required = {r.name for r in refs if r.op == ":?"}
    assert required == set(SAMPLE_SECRETS)
    for ref in refs:
        if ref.name in required:
            # Every use is guarded: one bare ${POSTGRES_PASSWORD} would put an empty password in a URL.
            assert ref.op == ":?", f"${{{ref.name}}} used without :?"
            assert ".env" in ref.arg, "the message should say where to set it"
    example = env_example()
    assert set(example.required) == required
    assert all(value == "" for value in example.required.values()), ".env.example holds no secret"


def test_compose_refuses_to_start_without_the_secrets() -> None:
    with pytest.raises(MissingVariable) as missing:
        load_compose({})
    assert missing.value.name in SAMPLE_SECRETS


def test_every_optional_variable_is_documented_with_the_default_compose_uses() -> None:
    defaults: dict[str, set[str]] = {}
    for ref in compose_references():
        if ref.op != ":?":
            assert ref.op == ":-", f"${{{ref.name}}} should have a default or be required"
            defaults.setdefault(ref.name, set()).add(ref.arg)
    assert all(len(values) == 1 for values in defaults.values()), f"inconsistent defaults: {defaults}"
    documented = env_example().optional
    assert set(documented) == set(defaults)
    for name, values in defaults.items():
        assert documented[name] == next(iter(values)), name


def test_interpolation_follows_the_compose_rules() -> None:
    env = {"SET": "x", "EMPTY": ""}
    assert interpolate("${SET:-d} ${EMPTY:-d} ${UNSET:-d} ${EMPTY-d} $$SET $SET", env) == "x d d  $SET x"
    with pytest.raises(MissingVariable):
        interpolate("${EMPTY:?no}", env)
    assert interpolate("${EMPTY?no}", env) == ""


def docker_compose_available() -> bool:
    if shutil.which("docker") is None:
        return False
    probe = subprocess.run(["docker", "compose", "version"], capture_output=True, timeout=30, check=False)
    return probe.returncode == 0


@pytest.mark.skipif(not docker_compose_available(), reason="no docker compose plugin on this machine")
def test_docker_compose_accepts_the_file(tmp_path: Path) -> None:
    # `config` validates against the compose schema without a daemon.
    env_file = tmp_path / "compose.env"
    env_file.write_text("".join(f"{name}={value}\n" for name, value in compose_env().items()))
    done = subprocess.run(
        ["docker", "compose", "-f", str(COMPOSE_FILE), "--env-file", str(env_file), "config", "--quiet"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr


# ---- metrics


def test_prometheus_reads_the_compose_scrape_config_and_rules_read_only(
    svc: dict[str, dict[str, Any]],
) -> None:
    prometheus = svc["prometheus"]
    config = next(arg for arg in prometheus["command"] if arg.startswith("--config.file="))
    binds = {m.target: m for m in mounts(prometheus)}
    deploy = binds["/etc/prometheus"]
    assert deploy.source == "./deploy/prometheus"
    assert deploy.read_only
    assert config == "--config.file=/etc/prometheus/prometheus.compose.yml"
    assert (COMPOSE_FILE.parent / "deploy" / "prometheus" / "prometheus.compose.yml").is_file()


def test_each_service_serves_metrics_where_the_compose_scrape_config_looks(
    svc: dict[str, dict[str, Any]],
) -> None:
    scrape = yaml.safe_load(
        (COMPOSE_FILE.parent / "deploy" / "prometheus" / "prometheus.compose.yml").read_text()
    )
    targets = {job["job_name"]: job["static_configs"][0]["targets"][0] for job in scrape["scrape_configs"]}
    expected = {
        "auth_svc": ("auth", "AUTH_METRICS_PORT"),
        "ocr_svc": ("ocr", "OCR_METRICS_PORT"),
        "notifier": ("notifier", "NOTIFIER_METRICS_PORT"),
    }
    for job, (service, variable) in expected.items():
        assert targets[job] == f"{service}:{environment(svc[service])[variable]}"
    assert targets["gateway"] == f"gateway:{environment(svc['gateway'])['GATEWAY_PORT']}"
    # Scraped over the compose network: never the container's loopback.
    assert environment(svc["notifier"])["NOTIFIER_METRICS_HOST"] == "0.0.0.0"
    assert environment(svc["auth"])["AUTH_HOST"] == environment(svc["ocr"])["OCR_HOST"] == "0.0.0.0"


def test_grafana_is_provisioned_with_the_dashboard_and_only_lets_viewers_in(
    svc: dict[str, dict[str, Any]],
) -> None:
    grafana = svc["grafana"]
    binds = {m.target: m for m in mounts(grafana)}
    assert all(m.read_only for m in binds.values())
    for mount in binds.values():
        assert (COMPOSE_FILE.parent / mount.source).is_dir(), mount.source
    env = environment(grafana)
    assert env["GF_AUTH_ANONYMOUS_ORG_ROLE"] == "Viewer"
    assert env["GF_AUTH_DISABLE_LOGIN_FORM"] == "true"


# ---- tracing


@pytest.mark.parametrize("app", APP_SERVICES, ids=APP_IDS)
def test_tracing_is_off_until_env_names_an_otlp_endpoint_then_on_in_every_service(
    app: AppService, monkeypatch: pytest.MonkeyPatch
) -> None:
    off = environment(services(load_compose(compose_env()))[app.name])
    assert {name for name in off if name.startswith("OTEL_")} == set(TRACING_VARIABLES)
    assert not telemetry.tracing_requested(off)

    endpoint = "http://jaeger:4318"
    with_endpoint = {**compose_env(), "OTEL_EXPORTER_OTLP_ENDPOINT": endpoint}
    on = environment(services(load_compose(with_endpoint))[app.name])
    assert on["OTEL_EXPORTER_OTLP_ENDPOINT"] == endpoint
    # Started the way the service starts it (the SDK reads the sampler from the process
    # environment); a value this build cannot serve would stop it with exit code 2.
    for name in TRACING_VARIABLES:
        monkeypatch.setenv(name, on[name])
    try:
        assert telemetry.configure_tracing(app.module)
        assert telemetry._provider is not None
        assert "TraceIdRatioBased{1.0}" in telemetry._provider.sampler.get_description()
    finally:
        telemetry.shutdown_tracing()
