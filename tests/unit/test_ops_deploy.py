"""The deployment files parse, name real settings and commands, and probe every process.

Kubernetes manifests (deploy/k8s), the compose file and the Dockerfile cannot be applied on
a machine without a cluster or a Docker engine; these tests check what can be checked
without one: YAML syntax, that every ``CARTPULSE_*`` variable is a field of ``Settings``,
that every container has liveness and readiness probes on ``/healthz`` and ``/readyz`` at a
port it declares, and that the worker is wired for static membership.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml

from streams.agents.batching import FETCH_MAX_WAIT_MS, FETCH_MIN_BYTES
from streams.collector.service import check_settings as check_collector_settings
from streams.runtime.settings import Settings
from tests.conftest import ROOT
from tests.support.ops import load_yaml
from tests.support.worker_app import worker_app_prints

K8S = ROOT / "deploy" / "k8s"
COMPOSE = ROOT / "docker-compose.kafka.yml"
DOCKERFILE = ROOT / "Dockerfile"
SETTINGS_VARIABLES = {f"CARTPULSE_{name.upper()}" for name in Settings.model_fields}
COMMANDS = {
    ("worker",),
    ("send", "sms"),
    ("send", "email"),
    ("consents", "mirror"),
    ("coupons",),
    ("webhooks",),
    ("collect",),
}
WORKLOADS = {"Deployment", "StatefulSet"}
ALL_INTERFACES = "0.0.0.0"  # noqa: S104 - containers are probed and scraped from outside


def k8s_documents() -> list[dict[str, Any]]:
    documents = []
    for path in sorted(K8S.glob("*.y*ml")):
        documents += [d for d in yaml.safe_load_all(path.read_text(encoding="utf-8")) if d]
    return documents


def workloads() -> list[dict[str, Any]]:
    return [d for d in k8s_documents() if d["kind"] in WORKLOADS]


def containers() -> Iterator[tuple[str, dict[str, Any]]]:
    for workload in workloads():
        for container in workload["spec"]["template"]["spec"]["containers"]:
            yield workload["metadata"]["name"], container


def compose() -> dict[str, Any]:
    loaded: dict[str, Any] = load_yaml(COMPOSE)
    return loaded


def compose_cartpulse_services() -> dict[str, dict[str, Any]]:
    return {
        name: service
        for name, service in compose()["services"].items()
        if service.get("image") == "cartpulse:local"
    }


def test_every_manifest_parses_and_the_kustomization_lists_them() -> None:
    kustomization = load_yaml(K8S / "kustomization.yaml")
    kinds = {document["kind"] for document in k8s_documents()}

    assert {"StatefulSet", "Deployment", "Service", "ConfigMap", "Secret"} <= kinds
    assert "PodDisruptionBudget" in kinds
    for resource in kustomization["resources"]:
        assert (K8S / resource).is_file(), resource
    # The Secret is a template with placeholders: applied by hand, never by the kustomization.
    assert "secret.example.yml" not in kustomization["resources"]


def test_every_container_probes_healthz_and_readyz_on_a_declared_port() -> None:
    probed = list(containers())

    assert len(probed) == 7, "worker, two senders, mirror, coupons, webhooks, collector"
    for workload, container in probed:
        ports = {port["name"] for port in container["ports"]}
        liveness = container["livenessProbe"]["httpGet"]
        readiness = container["readinessProbe"]["httpGet"]
        assert liveness["path"] == "/healthz", workload
        assert readiness["path"] == "/readyz", workload
        assert {liveness["port"], readiness["port"]} <= ports, workload


def test_workloads_run_real_commands_on_the_ports_their_settings_give() -> None:
    expected_port = {
        ("worker",): ("CARTPULSE_WEB_PORT", 6066),
        ("send", "sms"): ("CARTPULSE_SENDER_HTTP_PORT", 9100),
        ("send", "email"): ("CARTPULSE_SENDER_HTTP_PORT", 9100),
        ("consents", "mirror"): ("CARTPULSE_SENDER_HTTP_PORT", 9100),
        ("coupons",): ("CARTPULSE_SENDER_HTTP_PORT", 9100),
        ("webhooks",): ("CARTPULSE_WEBHOOKS_PORT", 8080),
        ("collect",): ("CARTPULSE_COLLECT_PORT", 8090),
    }
    seen = set()
    for workload, container in containers():
        command = tuple(container["args"])
        env = {e["name"]: e.get("value") for e in container.get("env", [])}
        variable, port = expected_port[command]
        assert env[variable] == str(port), workload
        assert container["ports"][0]["containerPort"] == port, workload
        seen.add(command)

    assert seen == COMMANDS


@pytest.mark.parametrize(
    ("component", "settings_prefix"),
    [("webhooks", "CARTPULSE_WEBHOOKS"), ("collector", "CARTPULSE_COLLECT")],
)
def test_public_services_are_scraped_on_their_metrics_port_not_the_public_one(
    component: str, settings_prefix: str
) -> None:
    name = f"cartpulse-{component}"
    (deployment,) = [w for w in workloads() if w["metadata"]["name"] == name]
    template = deployment["spec"]["template"]
    (container,) = template["spec"]["containers"]
    env = {e["name"]: e.get("value") for e in container["env"]}
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    metrics_port = int(env[f"{settings_prefix}_METRICS_PORT"])

    assert template["metadata"]["labels"]["app.kubernetes.io/component"] == component
    assert env[f"{settings_prefix}_HOST"] == ALL_INTERFACES
    assert env[f"{settings_prefix}_METRICS_HOST"] == ALL_INTERFACES
    assert ports == {"http": int(env[f"{settings_prefix}_PORT"]), "metrics": metrics_port}
    assert metrics_port != ports["http"]
    assert template["metadata"]["annotations"]["prometheus.io/port"] == str(metrics_port)
    # the Service (the ingress's way in) exposes the public port only
    (service,) = [
        d for d in k8s_documents() if d["kind"] == "Service" and d["metadata"]["name"] == name
    ]
    assert [p["targetPort"] for p in service["spec"]["ports"]] == ["http"]
    # the load balancer drops the pod before SIGTERM reaches it
    assert container["lifecycle"]["preStop"]["exec"]["command"]

    compose_env = compose_cartpulse_services()[component]["environment"]
    assert compose_env[f"{settings_prefix}_HOST"] == ALL_INTERFACES
    assert compose_env[f"{settings_prefix}_METRICS_HOST"] == ALL_INTERFACES
    scrape = load_yaml(ROOT / "deploy" / "prometheus" / "prometheus.yml")
    (job,) = [j for j in scrape["scrape_configs"] if j["job_name"] == name]
    metrics_target = f"{component}:{compose_env[f'{settings_prefix}_METRICS_PORT']}"
    assert job["static_configs"][0]["targets"] == [metrics_target]
    # /metrics reaches the host on 127.0.0.1 only, if at all
    published = compose_cartpulse_services()[component]["ports"]
    metrics_published = [p for p in published if p.endswith(f":{metrics_port}")]
    assert all(p.startswith("127.0.0.1:") for p in metrics_published), published


def test_the_collector_publishes_its_ports_on_localhost_only_and_needs_no_redis() -> None:
    collector = compose_cartpulse_services()["collector"]
    env = collector["environment"]
    healthcheck = " ".join(collector["healthcheck"]["test"])

    assert collector["ports"], "the collector publishes its port"
    assert all(port.startswith("127.0.0.1:") for port in collector["ports"])
    assert f"127.0.0.1:{env['CARTPULSE_COLLECT_PORT']}:" in " ".join(collector["ports"])
    assert f":{env['CARTPULSE_COLLECT_PORT']}/healthz" in healthcheck
    assert set(collector["depends_on"]) == {"kafka"}
    # the demo store's secret is a placeholder unless set, never empty
    assert "placeholder" in env["CARTPULSE_COLLECT_TOKENS"]


def test_senders_run_three_replicas_with_disruption_budgets() -> None:
    senders = [w for w in workloads() if w["metadata"]["name"].startswith("cartpulse-sender-")]
    budgets = [d for d in k8s_documents() if d["kind"] == "PodDisruptionBudget"]

    assert len(senders) == 2
    assert all(sender["spec"]["replicas"] == 3 for sender in senders)
    for workload in workloads():
        labels = workload["spec"]["template"]["metadata"]["labels"]
        covering = [
            b for b in budgets if b["spec"]["selector"]["matchLabels"].items() <= labels.items()
        ]
        assert len(covering) == 1, workload["metadata"]["name"]


def test_the_worker_statefulset_uses_its_pod_name_as_group_instance_id() -> None:
    (worker,) = [w for w in workloads() if w["kind"] == "StatefulSet"]
    (container,) = worker["spec"]["template"]["spec"]["containers"]
    env = {e["name"]: e for e in container["env"]}

    instance_id = env["CARTPULSE_GROUP_INSTANCE_ID"]["valueFrom"]["fieldRef"]["fieldPath"]
    assert instance_id == "metadata.name"
    assert env["CARTPULSE_WEB_HOST"]["value"] == ALL_INTERFACES
    # Long enough for a rolling update's restart to keep its partitions, and a valid setting.
    timeout = Settings(session_timeout=env["CARTPULSE_SESSION_TIMEOUT"]["value"]).session_timeout
    assert timeout == timedelta(seconds=45)
    mounted = {m["mountPath"] for m in container["volumeMounts"]}
    assert env["CARTPULSE_DATA_DIR"]["value"] in mounted
    assert worker["spec"]["volumeClaimTemplates"]


def test_every_variable_in_the_deployment_files_is_a_setting() -> None:
    named: set[str] = set()
    for document in k8s_documents():
        if document["kind"] == "ConfigMap":
            named |= set(document["data"])
        if document["kind"] == "Secret":
            named |= set(document["stringData"])
    for _, container in containers():
        named |= {e["name"] for e in container.get("env", [])}
    for service in compose_cartpulse_services().values():
        named |= set(service["environment"])
    secret_template = (K8S / "secret.example.yml").read_text(encoding="utf-8")
    named |= set(re.findall(r"#\s*(CARTPULSE_[A-Z0-9_]+):", secret_template))

    assert len(named) > 20
    assert named - SETTINGS_VARIABLES == set(), "not settings: a typo, or a removed setting"


def test_the_configured_values_are_valid_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    (config,) = [d for d in k8s_documents() if d["kind"] == "ConfigMap"]
    (secret,) = [d for d in k8s_documents() if d["kind"] == "Secret"]
    values = {**config["data"], **secret["stringData"]}
    # read from the environment, as a container does (JSON for dicts and lists)
    for variable in os.environ:
        if variable.startswith("CARTPULSE_"):
            monkeypatch.delenv(variable)
    for variable, value in values.items():
        monkeypatch.setenv(variable, value)

    settings = Settings(_env_file=None)

    assert settings.journeys_dry_run, "the shipped config must not send until it is set up"
    assert settings.sender_http_port == 9100
    check_collector_settings(settings)  # the collector starts: a store can send to it
    assert settings.collect_tokens


def test_compose_runs_the_full_stack_with_healthchecks() -> None:
    services = compose()["services"]
    cartpulse = compose_cartpulse_services()

    assert {tuple(s["command"]) for s in cartpulse.values()} == COMMANDS
    assert {"kafka", "redis", "prometheus", "grafana"} <= set(services)
    assert services["kafka"]["image"].startswith("apache/kafka:")
    assert services["kafka"]["ports"] == ["9092:9092"]
    assert services["redis"]["ports"] == ["6379:6379"]
    # Kafka and Redis alone stay the default (tests and the local demo need only them).
    assert "profiles" not in services["kafka"]
    assert "profiles" not in services["redis"]
    for name, service in services.items():
        assert service["healthcheck"]["test"], name
    for name, service in cartpulse.items():
        assert service["environment"]["CARTPULSE_KAFKA_BOOTSTRAP_SERVERS"] == "kafka:19092"
        assert service["depends_on"]["kafka"]["condition"] == "service_healthy", name
    volumes = services["prometheus"]["volumes"] + services["grafana"]["volumes"]
    for volume in volumes:
        source = volume.split(":", 1)[0]
        assert (ROOT / source).exists(), source


def test_the_dockerfile_builds_wheels_with_rust_and_installs_them_on_python_311_slim() -> None:
    dockerfile = DOCKERFILE.read_text(encoding="utf-8")
    build, _, image = dockerfile.partition("\nFROM python:3.11-slim\n")

    assert re.search(r"^FROM python:3\.11-slim AS build$", build, re.MULTILINE)
    assert "sh.rustup.rs" in build
    assert "COPY native ./native" in build
    assert re.search(r"pip wheel --wheel-dir /wheels \.$", build, re.MULTILINE)
    assert "pip install --no-index --find-links /wheels cartpulse" in image
    assert "cargo" not in image and "rustup" not in image  # no toolchain in the image
    assert 'ENTRYPOINT ["cartpulse"]' in image


@pytest.mark.parametrize(
    ("instance_id", "session_timeout", "seconds"),
    [
        (None, None, "10.0 1.0"),
        ("cartpulse-worker-0", "PT45S", "45.0 1.0"),
        (None, "PT6S", "6.0 1.0"),
    ],
)
def test_the_worker_app_takes_its_web_host_membership_and_timeouts_from_settings(
    tmp_path: Path, instance_id: str | None, session_timeout: str | None, seconds: str
) -> None:
    # A Faust app leaves an event loop behind: build it in its own interpreter.
    body = (
        "c = app.conf\n"
        "print(c.web_host, c.consumer_group_instance_id, c.broker_session_timeout,"
        " c.broker_heartbeat_interval)\n"
    )
    env = {
        "CARTPULSE_WEB_HOST": ALL_INTERFACES,
        "CARTPULSE_GROUP_INSTANCE_ID": instance_id,
        "CARTPULSE_SESSION_TIMEOUT": session_timeout,
    }
    printed = worker_app_prints(tmp_path, body, env)

    assert printed.split() == [ALL_INTERFACES, str(instance_id), *seconds.split()]


def test_the_worker_consumer_fetches_in_batches_not_a_request_per_few_records(
    tmp_path: Path,
) -> None:
    # Kafka's default minimum (1 byte) made a live worker fetch for every few records
    body = (
        "import asyncio\n"
        "async def main():\n"
        "    made = app.consumer._thread._create_worker_consumer(app.transport)\n"
        "    print(made._fetch_min_bytes, made._fetch_max_wait_ms)\n"
        "    await made.stop()\n"
        "asyncio.run(main())\n"
    )
    printed = worker_app_prints(tmp_path, body, {})

    assert printed.split() == [str(FETCH_MIN_BYTES), str(FETCH_MAX_WAIT_MS)]
