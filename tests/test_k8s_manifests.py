"""The Kubernetes manifests of deploy/k8s/ agree with each other and with the project.

No cluster is needed: the YAML documents are parsed, and what they say about the monitor
(probe paths, the metrics port, the command line, the config file, the environment, the
user) is checked against the project itself (the HTTP endpoints, the settings, the CLI
parser, the Dockerfile).
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import re
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path, PurePosixPath
from typing import Any

import pytest
import yaml
from prometheus_client import CollectorRegistry

from stream_monitor.cli import RUN_OPTIONS, build_parser
from stream_monitor.config.loading import load_settings
from stream_monitor.config.settings import ENV_PREFIX, Settings
from stream_monitor.service.endpoints import HttpEndpoints

ROOT = Path(__file__).resolve().parent.parent
K8S = ROOT / "deploy" / "k8s"
DOCKERFILE = ROOT / "Dockerfile"
RULES = ROOT / "deploy" / "prometheus" / "rules" / "stream-monitor.rules.yml"

KNOWN_KINDS = {
    ("v1", "Namespace"),
    ("v1", "ConfigMap"),
    ("v1", "Service"),
    ("v1", "PersistentVolumeClaim"),
    ("apps/v1", "Deployment"),
    ("policy/v1", "PodDisruptionBudget"),
    ("monitoring.coreos.com/v1", "ServiceMonitor"),
    ("monitoring.coreos.com/v1", "PodMonitor"),
}

# A value the Secret stream-monitor-kafka could hold (see deployment.yaml).
SECRET_KAFKA_JSON = '{"sasl.password": "not-the-real-one"}'
POD_NAME = "stream-monitor-6d5f7c9b8-x2x7q"


# -- helpers -----------------------------------------------------------------------------


@functools.cache
def documents() -> tuple[tuple[str, dict[str, Any]], ...]:
    """(file name, document) of every manifest; parsed once, not to be modified."""
    docs = []
    for path in sorted(K8S.glob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text(encoding="utf-8")):
            if doc is not None:
                docs.append((path.name, doc))
    return tuple(docs)


def objects(kind: str) -> list[dict[str, Any]]:
    return [doc for _, doc in documents() if doc.get("kind") == kind]


def one(kind: str) -> dict[str, Any]:
    found = objects(kind)
    assert len(found) == 1, f"expected one {kind}, found {len(found)}"
    return found[0]


def monitor_ref() -> dict[str, Any]:
    """The ServiceMonitor, or else the PodMonitor."""
    found = objects("ServiceMonitor") + objects("PodMonitor")
    assert len(found) == 1, "expected one ServiceMonitor or PodMonitor"
    return found[0]


def pod_spec() -> dict[str, Any]:
    spec: dict[str, Any] = one("Deployment")["spec"]["template"]["spec"]
    return spec


def container() -> dict[str, Any]:
    containers = pod_spec()["containers"]
    assert len(containers) == 1
    result: dict[str, Any] = containers[0]
    return result


def pod_labels() -> dict[str, str]:
    labels: dict[str, str] = one("Deployment")["spec"]["template"]["metadata"]["labels"]
    return labels


def selects(selector: dict[str, Any], labels: dict[str, str]) -> bool:
    """Whether a label selector (matchLabels / matchExpressions) matches the labels."""
    assert set(selector) <= {"matchLabels", "matchExpressions"}, selector
    assert selector, "an empty selector selects everything"
    for key, value in selector.get("matchLabels", {}).items():
        if labels.get(key) != value:
            return False
    for expr in selector.get("matchExpressions", []):
        key, op, values = expr["key"], expr["operator"], expr.get("values", [])
        if op == "In" and labels.get(key) not in values:
            return False
        if op == "NotIn" and labels.get(key) in values:
            return False
        if op == "Exists" and key not in labels:
            return False
        if op == "DoesNotExist" and key in labels:
            return False
    return True


def container_port(port: int | str) -> int:
    """A probe's or Service's port (a number or a container port's name) as a number."""
    if isinstance(port, int):
        return port
    ports = {p["name"]: p["containerPort"] for p in container()["ports"]}
    assert port in ports, f"no container port named {port!r}"
    return int(ports[port])


def dockerfile_user() -> str:
    users = [
        line.split(None, 1)[1].strip()
        for line in DOCKERFILE.read_text(encoding="utf-8").splitlines()
        if line.strip().upper().startswith("USER ")
    ]
    assert users, "the Dockerfile has no USER"
    return users[-1]


def strict_parser() -> argparse.ArgumentParser:
    """The real CLI parser without prefix matching (a renamed option must fail here)."""
    parser = build_parser()
    parser.allow_abbrev = False
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                sub.allow_abbrev = False
    return parser


def mount_of(path: str) -> tuple[dict[str, Any], dict[str, Any], PurePosixPath]:
    """(volumeMount, volume, path inside the volume) of a path in the container."""
    target = PurePosixPath(path)
    volumes = {v["name"]: v for v in pod_spec()["volumes"]}
    for mount in container()["volumeMounts"]:
        base = PurePosixPath(mount["mountPath"])
        if target == base or base in target.parents:
            return mount, volumes[mount["name"]], target.relative_to(base)
    raise AssertionError(f"{path} is on no volume of the container")


def config_file() -> tuple[dict[str, Any], str]:
    """(ConfigMap, key) of the container's --config file."""
    args = strict_parser().parse_args(container()["args"])
    _mount, volume, inside = mount_of(str(args.config))
    assert "configMap" in volume, f"--config {args.config} is not on a ConfigMap volume"
    name = volume["configMap"]["name"]
    configmap = next(c for c in objects("ConfigMap") if c["metadata"]["name"] == name)
    key = str(inside)
    assert key in configmap["data"], f"ConfigMap {name} has no key {key}"
    return configmap, key


def container_env(secret_value: str = SECRET_KAFKA_JSON) -> dict[str, str]:
    """The container's environment as Kubernetes would set it (downward API, Secret)."""
    env = {}
    for var in container().get("env", []):
        source = var.get("valueFrom")
        if source is None:
            env[var["name"]] = str(var["value"])
        elif source.get("fieldRef", {}).get("fieldPath") == "metadata.name":
            env[var["name"]] = POD_NAME
        elif "secretKeyRef" in source:
            env[var["name"]] = secret_value
        else:
            raise AssertionError(f"{var['name']}: unexpected source {source}")
    return env


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[pytest.MonkeyPatch]:
    for key in list(os.environ):
        if key.startswith(ENV_PREFIX):
            monkeypatch.delenv(key)
    yield monkeypatch


def settings_in_pod(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Settings:
    """The settings the container would start with: its args, the ConfigMap's file (its
    reference path replaced by a local directory) and its environment."""
    configmap, key = config_file()
    data = yaml.safe_load(configmap["data"][key])
    if data.get("reference") is not None:
        (tmp_path / "reference").mkdir()
        data["reference"] = str(tmp_path / "reference")
    path = tmp_path / key
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    for name, value in container_env().items():
        monkeypatch.setenv(name, value)
    args = strict_parser().parse_args(container()["args"])
    cli = {n: getattr(args, n) for n in RUN_OPTIONS if hasattr(args, n)}
    assert "kafka" not in cli, "keep librdkafka settings in the config file or the Secret"
    return load_settings(cli, path)


# -- the documents -------------------------------------------------------------------------


def test_every_document_is_a_known_kind_with_a_name() -> None:
    docs = documents()
    assert docs, "no manifests in deploy/k8s"
    seen = set()
    for filename, doc in docs:
        kind = (doc.get("apiVersion"), doc.get("kind"))
        assert kind in KNOWN_KINDS, f"{filename}: unknown {kind}"
        name = doc.get("metadata", {}).get("name")
        assert name and re.fullmatch(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?", name), filename
        assert (kind, name) not in seen, f"{filename}: duplicate {kind} {name}"
        seen.add((kind, name))
    kinds = {doc["kind"] for _, doc in docs}
    assert {"ConfigMap", "Deployment", "Service", "PodDisruptionBudget"} <= kinds
    assert kinds & {"ServiceMonitor", "PodMonitor"}


def test_everything_is_in_one_namespace() -> None:
    namespaces = [doc["metadata"]["name"] for _, doc in documents() if doc["kind"] == "Namespace"]
    used = {
        doc["metadata"].get("namespace") for _, doc in documents() if doc["kind"] != "Namespace"
    }
    assert len(used) == 1 and None not in used, f"namespaces: {used}"
    if namespaces:
        assert used == set(namespaces)
    ref = monitor_ref()
    names = ref["spec"].get("namespaceSelector", {}).get("matchNames")
    if names is not None:
        assert set(names) == used


# -- labels and selectors ------------------------------------------------------------------


def test_selectors_agree() -> None:
    deployment = one("Deployment")
    labels = pod_labels()
    assert selects(deployment["spec"]["selector"], labels)
    service = one("Service")
    assert service["spec"]["selector"], "the Service must select the pods"
    assert selects({"matchLabels": service["spec"]["selector"]}, labels)
    pdb = one("PodDisruptionBudget")
    assert selects(pdb["spec"]["selector"], labels)
    ref = monitor_ref()
    if ref["kind"] == "ServiceMonitor":  # selects Services, by the Service's own labels
        assert selects(ref["spec"]["selector"], service["metadata"]["labels"])
    else:
        assert selects(ref["spec"]["selector"], labels)
    spread = pod_spec().get("topologySpreadConstraints", [])
    for constraint in spread:
        assert selects(constraint["labelSelector"], labels)


def test_scrape_endpoint_is_the_metrics_port_and_path() -> None:
    service = one("Service")
    ports = {p["name"]: p for p in service["spec"]["ports"]}
    ref = monitor_ref()
    endpoints = ref["spec"].get("endpoints") or ref["spec"].get("podMetricsEndpoints")
    assert endpoints and len(endpoints) == 1
    endpoint = endpoints[0]
    assert endpoint.get("path", "/metrics") == "/metrics"
    default_port = Settings.model_fields["metrics_port"].default
    if ref["kind"] == "ServiceMonitor":
        assert endpoint["port"] in ports, f"the Service has no port {endpoint['port']!r}"
        port = ports[endpoint["port"]]
        assert container_port(port.get("targetPort", port["port"])) == default_port
    else:
        assert container_port(endpoint["port"]) == default_port
    assert ports["metrics"]["port"] == default_port


def test_job_label_is_the_one_the_alerting_rules_use() -> None:
    # The Prometheus Operator's job label: the Service's name for a ServiceMonitor without
    # jobLabel; `<namespace>/<name>` for a PodMonitor without jobLabel.
    jobs = set(re.findall(r'\bup\{job="([^"]+)"', RULES.read_text(encoding="utf-8")))
    assert jobs, "the rules do not select up{job=...}"
    ref = monitor_ref()
    assert "jobLabel" not in ref["spec"], "the rules expect the default job label"
    assert ref["kind"] == "ServiceMonitor", "a PodMonitor's job would be <namespace>/<name>"
    assert jobs == {one("Service")["metadata"]["name"]}


# -- the container -------------------------------------------------------------------------


def test_probes_use_the_monitors_endpoints_and_port() -> None:
    c = container()
    default_port = Settings.model_fields["metrics_port"].default
    assert default_port == 9108
    live, ready = c["livenessProbe"]["httpGet"], c["readinessProbe"]["httpGet"]
    assert live["path"] == "/healthz"
    assert ready["path"] == "/readyz"
    assert container_port(live["port"]) == default_port
    assert container_port(ready["port"]) == default_port
    assert [p["name"] for p in c["ports"]] == ["metrics"]
    assert c["ports"][0]["containerPort"] == default_port


@pytest.mark.parametrize("ready", [True, False])
def test_probe_paths_are_served_by_the_monitor(ready: bool) -> None:
    """The real HTTP endpoints: liveness 200; readiness 200 or 503, never 404."""
    c = container()
    ref = monitor_ref()
    endpoints = ref["spec"].get("endpoints") or ref["spec"].get("podMetricsEndpoints")
    server = HttpEndpoints("127.0.0.1", 0, CollectorRegistry(), lambda: (ready, "test"), lambda: {})
    server.start()
    try:

        def get(path: str) -> int:
            url = f"http://127.0.0.1:{server.port}{path}"
            try:
                with urllib.request.urlopen(url, timeout=5) as response:
                    return int(response.status)
            except urllib.error.HTTPError as exc:
                return exc.code

        assert get(c["livenessProbe"]["httpGet"]["path"]) == 200
        assert get(c["readinessProbe"]["httpGet"]["path"]) == (200 if ready else 503)
        assert get(endpoints[0].get("path", "/metrics")) == 200
        assert get("/no-such-path") == 404
    finally:
        server.stop()


def test_args_parse_with_the_real_cli() -> None:
    c = container()
    assert "command" not in c, "keep the image's ENTRYPOINT (stream-monitor)"
    args = strict_parser().parse_args(c["args"])
    assert args.command == "run"
    assert args.config is not None
    configmap, key = config_file()
    assert key == "monitor.yaml"
    assert configmap["metadata"]["name"] == "stream-monitor-config"


def test_configmap_config_loads_with_the_projects_settings(
    tmp_path: Path, clean_env: pytest.MonkeyPatch
) -> None:
    configmap, key = config_file()
    path = tmp_path / key
    data = yaml.safe_load(configmap["data"][key])
    reference = data.pop("reference")
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    settings = load_settings({}, path)  # no reference: the path exists only in the pod
    assert settings.bootstrap_servers and settings.topic != settings.alerts_topic
    assert settings.window_size > 0 and settings.check_every > 0
    assert "sasl.password" not in settings.kafka, "the password belongs in the Secret"
    # the reference directory is the read-only volume of references
    mount, volume, _inside = mount_of(reference)
    assert mount.get("readOnly") is True
    claim = volume["persistentVolumeClaim"]["claimName"]
    assert claim in {p["metadata"]["name"] for p in objects("PersistentVolumeClaim")}


def test_the_pod_starts_with_valid_settings(tmp_path: Path, clean_env: pytest.MonkeyPatch) -> None:
    settings = settings_in_pod(tmp_path, clean_env)
    assert settings.instance_id == POD_NAME
    assert settings.metrics_port == container_port("metrics")
    assert settings.metrics_host == "0.0.0.0", "the probes and Prometheus come from outside"
    # the Secret's JSON is merged into the file's librdkafka settings
    configmap, key = config_file()
    from_file = yaml.safe_load(configmap["data"][key])["kafka"]
    assert settings.kafka_settings() == {**from_file, **json.loads(SECRET_KAFKA_JSON)}
    assert "not-the-real-one" not in repr(settings)  # the password stays a secret
    assert str(settings.kafka["security.protocol"]).startswith("SASL")


def test_env_vars_are_settings_fields() -> None:
    env = container()["env"]
    names = [v["name"] for v in env]
    assert len(names) == len(set(names))
    ours = [n for n in names if n.startswith(ENV_PREFIX)]
    assert {"STREAM_MONITOR_INSTANCE_ID", "STREAM_MONITOR_KAFKA"} <= set(ours)
    for name in ours:
        field = name.removeprefix(ENV_PREFIX).lower()
        assert field in Settings.model_fields, f"{name}: no setting {field!r}"
    by_name = {v["name"]: v for v in env}
    field_ref = by_name["STREAM_MONITOR_INSTANCE_ID"]["valueFrom"]["fieldRef"]
    assert field_ref["fieldPath"] == "metadata.name"
    secret = by_name["STREAM_MONITOR_KAFKA"]["valueFrom"]["secretKeyRef"]
    assert secret["name"] and secret["key"] and not secret.get("optional", False)


def test_runs_as_the_dockerfiles_non_root_user() -> None:
    user, _, group = dockerfile_user().partition(":")
    assert user.isdigit() and int(user) != 0
    for context in (pod_spec()["securityContext"], container()["securityContext"]):
        assert context["runAsNonRoot"] is True
        assert context["runAsUser"] == int(user)
        if group:
            assert context.get("runAsGroup", int(group)) == int(group)
    c = container()["securityContext"]
    assert c["allowPrivilegeEscalation"] is False
    assert c["capabilities"]["drop"] == ["ALL"]


def test_image_is_the_projects_and_pinned() -> None:
    image = container()["image"]
    name, _, tag = image.rpartition(":")
    assert name.rsplit("/", 1)[-1] == "stream-monitor"
    assert tag and tag != "latest" and "/" not in tag


def test_replicas_rollout_and_disruption_budget() -> None:
    deployment = one("Deployment")
    replicas = deployment["spec"]["replicas"]
    assert replicas == 3
    text = (K8S / "deployment.yaml").read_text(encoding="utf-8")
    assert re.search(r"#.*partition", text), "explain replicas vs partitions"
    rolling = deployment["spec"]["strategy"]["rollingUpdate"]
    assert rolling["maxSurge"] == 0, "a surge pod may get no partition and never be ready"
    assert 0 < rolling["maxUnavailable"] < replicas
    pdb = one("PodDisruptionBudget")["spec"]
    assert ("maxUnavailable" in pdb) != ("minAvailable" in pdb)
    if "maxUnavailable" in pdb:
        assert 0 < pdb["maxUnavailable"] < replicas
    else:
        assert 0 < pdb["minAvailable"] < replicas


def test_resources_and_graceful_shutdown() -> None:
    resources = container()["resources"]
    assert {"cpu", "memory"} <= set(resources["requests"])
    assert "memory" in resources["limits"]
    # SIGTERM: finish the batch, acknowledge alerts, commit, leave the group
    assert pod_spec()["terminationGracePeriodSeconds"] >= 30


def test_volumes_are_mounted_and_defined() -> None:
    volumes = {v["name"] for v in pod_spec()["volumes"]}
    mounts = {m["name"] for m in container()["volumeMounts"]}
    assert mounts == volumes
    if container()["securityContext"].get("readOnlyRootFilesystem"):
        mount_of("/tmp")  # a writable /tmp for the Python process
