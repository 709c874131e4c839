"""The container and dashboard files agree with the code: Dockerfile, docker-compose.yml,
Prometheus and Grafana provisioning, the Grafana dashboard.

No Docker engine is needed: the files are parsed, and every command line, port, topic,
path and metric name they mention is checked against the project itself (the real CLI
parser, the demo's topic names, the metrics registry).
"""

from __future__ import annotations

import argparse
import fnmatch
import json
import os
import re
import shlex
import shutil
import subprocess
import tomllib
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml
from packaging.specifiers import SpecifierSet

from stream_monitor.cli import RUN_OPTIONS, build_parser
from stream_monitor.config.settings import Settings
from stream_monitor.sinks.prometheus import Metrics
from stream_monitor.tools import demo

ROOT = Path(__file__).resolve().parent.parent
DOCKERFILE = ROOT / "Dockerfile"
DOCKERIGNORE = ROOT / ".dockerignore"
COMPOSE = ROOT / "docker-compose.yml"
PROMETHEUS = ROOT / "deploy" / "prometheus" / "prometheus.yml"
GRAFANA = ROOT / "deploy" / "grafana"
DATASOURCE = GRAFANA / "provisioning" / "datasources" / "prometheus.yml"
PROVIDERS = GRAFANA / "provisioning" / "dashboards" / "dashboards.yml"
DASHBOARD = GRAFANA / "dashboards" / "stream-monitor.json"

MONITOR = "monitor"


# -- helpers -----------------------------------------------------------------------------


def strict_parser() -> argparse.ArgumentParser:
    """The real CLI parser, without argparse's prefix matching: `--events` must not pass
    for `--events-per-model`, so an option renamed in the code fails here."""
    parser = build_parser()
    parser.allow_abbrev = False
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                sub.allow_abbrev = False
    return parser


def dockerfile_instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs; continuation lines joined, comments dropped."""
    instructions: list[tuple[str, str]] = []
    pending = ""
    for raw in DOCKERFILE.read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if pending and line.startswith("#"):
            continue  # comment lines inside a continuation are ignored by Docker
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        full = (pending + line).strip()
        pending = ""
        keyword, _, args = full.partition(" ")
        instructions.append((keyword.upper(), args.strip()))
    assert not pending, "Dockerfile ends inside a continuation line"
    return instructions


def final_stage(instructions: list[tuple[str, str]]) -> list[tuple[str, str]]:
    starts = [i for i, (keyword, _) in enumerate(instructions) if keyword == "FROM"]
    assert starts, "Dockerfile has no FROM"
    return instructions[starts[-1] :]


def exec_form(args: str) -> list[str]:
    value = json.loads(args)
    assert isinstance(value, list) and all(isinstance(v, str) for v in value), args
    return value


def load_yaml(path: Path) -> Any:
    return yaml.safe_load(path.read_text(encoding="utf-8"))


def compose() -> dict[str, Any]:
    data = load_yaml(COMPOSE)
    assert isinstance(data, dict)
    return data


def services() -> dict[str, dict[str, Any]]:
    svcs = compose()["services"]
    assert isinstance(svcs, dict) and svcs
    return svcs


def as_list(value: Any) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        return shlex.split(value)
    assert isinstance(value, list)
    return [str(v) for v in value]


def project_services() -> dict[str, dict[str, Any]]:
    """Services built from this repository (build context = the repository root)."""
    built = {}
    for name, svc in services().items():
        build = svc.get("build")
        if build is None:
            continue
        context = build if isinstance(build, str) else build.get("context", ".")
        if (COMPOSE.parent / context).resolve() == ROOT:
            built[name] = svc
    return built


def command(service: str) -> list[str]:
    return as_list(services()[service].get("command"))


def option(argv: list[str], name: str) -> str:
    assert argv.count(name) == 1, f"{name} must appear once in {argv}"
    return argv[argv.index(name) + 1]


def published(service: str) -> dict[int, int]:
    """container port -> host port, from the short `ports` syntax."""
    result: dict[int, int] = {}
    for entry in services()[service].get("ports", []):
        if isinstance(entry, dict):
            result[int(entry["target"])] = int(entry["published"])
            continue
        spec = str(entry).split("/")[0]
        parts = spec.split(":")
        container = int(parts[-1])
        host = int(parts[-2]) if len(parts) > 1 else container
        result[container] = host
    return result


def mounts(service: str) -> list[tuple[str, str]]:
    """(source, target) of every volume of a service (short or long syntax)."""
    result = []
    for entry in services()[service].get("volumes", []):
        if isinstance(entry, dict):
            result.append((str(entry["source"]), str(entry["target"])))
        else:
            parts = str(entry).split(":")
            assert len(parts) in (2, 3), f"{service}: unexpected volume {entry!r}"
            result.append((parts[0], parts[1]))
    return result


def is_host_path(source: str) -> bool:
    return source.startswith((".", "/", "~"))


def mount_target(service: str, host_path: Path) -> str:
    for source, target in mounts(service):
        if is_host_path(source) and (COMPOSE.parent / source).resolve() == host_path.resolve():
            return target
    raise AssertionError(f"{service} does not mount {host_path.relative_to(ROOT)}")


def dashboard() -> dict[str, Any]:
    data = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    assert isinstance(data, dict)
    return data


def all_panels(panels: list[dict[str, Any]]) -> list[dict[str, Any]]:
    result = []
    for panel in panels:
        result.append(panel)
        result.extend(all_panels(panel.get("panels", [])))  # collapsed rows
    return result


def dashboard_queries() -> list[str]:
    data = dashboard()
    exprs = [t["expr"] for p in all_panels(data["panels"]) for t in p.get("targets", [])]
    for var in data["templating"]["list"]:
        if var.get("type") == "query":
            query = var["query"]
            exprs.append(query["query"] if isinstance(query, dict) else query)
    return exprs


_KEYWORDS = {
    "by",
    "without",
    "on",
    "ignoring",
    "group_left",
    "group_right",
    "bool",
    "and",
    "or",
    "unless",
    "offset",
    "atan2",
    "inf",
    "nan",
}


def metric_names(expr: str) -> set[str]:
    """Metric names of a PromQL expression (or a Grafana `label_values(...)` query)."""
    text = re.sub(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'', '""', expr)  # strings
    text = re.sub(r"\{[^}]*\}", " ", text)  # label matchers
    text = re.sub(r"\[[^\]]*\]", " ", text)  # range selectors
    text = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", text)
    label_values = re.fullmatch(r"\s*label_values\((.*),\s*\w+\s*\)\s*", text)
    if label_values:
        text = label_values.group(1)
    names = set()
    for match in re.finditer(r"(?<![\w$.])[A-Za-z_:][A-Za-z0-9_:]*", text):
        rest = text[match.end() :].lstrip()
        if rest.startswith("("):
            continue  # a function or aggregation
        if match.group(0).lower() in _KEYWORDS:
            continue
        names.add(match.group(0))
    return names


def exposed_metric_names() -> set[str]:
    """Sample names the project's registry can expose, by metric family type."""
    suffixes = {
        "counter": ("_total", "_created"),
        "gauge": ("",),
        "histogram": ("_bucket", "_sum", "_count", "_created"),
        "summary": ("", "_sum", "_count", "_created"),
        "info": ("_info",),
        "stateset": ("",),
        "gaugehistogram": ("_bucket", "_gsum", "_gcount"),
        "unknown": ("",),
    }
    names = set()
    for family in Metrics().registry.collect():
        names.update(family.name + s for s in suffixes[family.type])
    return names


# -- Dockerfile --------------------------------------------------------------------------


def test_dockerfile_base_image_satisfies_requires_python() -> None:
    froms = [args for keyword, args in dockerfile_instructions() if keyword == "FROM"]
    images = [args.split()[0] for args in froms]
    assert images[-1] == "python:3.11-slim"
    version = re.match(r"python:(\d+\.\d+)", images[-1])
    assert version is not None
    requires = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["requires-python"]
    assert SpecifierSet(requires).contains(version.group(1) + ".0")


def test_setup_asks_for_the_rust_the_crate_needs() -> None:
    crate = tomllib.loads((ROOT / "native" / "Cargo.toml").read_text())["package"]
    setup = re.search(r"^RUST_MIN=(\S+)$", (ROOT / "scripts" / "setup").read_text(), re.M)
    assert setup is not None, "scripts/setup must name the minimum Rust (RUST_MIN=...)"
    assert setup.group(1) == crate["rust-version"]


def test_dockerfile_installs_the_package_and_runs_its_console_script() -> None:
    instructions = dockerfile_instructions()
    runs = " ".join(args for keyword, args in instructions if keyword == "RUN")
    assert re.search(r"pip install (\S+ )*\.(\s|$)", runs), "the image must `pip install .`"
    stage = final_stage(instructions)
    entrypoint = [exec_form(a) for k, a in stage if k == "ENTRYPOINT"][-1]
    cmd = [exec_form(a) for k, a in stage if k == "CMD"][-1]
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    assert entrypoint == ["stream-monitor"]
    assert entrypoint[0] in scripts
    assert cmd == ["run"]
    args = strict_parser().parse_args(cmd)
    assert args.command == "run"


def test_dockerfile_copies_only_what_exists_and_is_not_dockerignored() -> None:
    patterns = [
        line.strip()
        for line in DOCKERIGNORE.read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]

    def ignored(rel: str) -> bool:
        return any(
            fnmatch.fnmatch(rel, p.lstrip("/")) or fnmatch.fnmatch(rel, p.lstrip("/") + "/*")
            for p in patterns
            if not p.startswith("!")
        )

    copies = [args for keyword, args in dockerfile_instructions() if keyword in ("COPY", "ADD")]
    for args in copies:
        words = [w for w in args.split() if not w.startswith("--")]
        if args.startswith("--from=") or " --from=" in args:
            continue  # from another stage
        sources = words[:-1]
        for source in sources:
            if not re.search(r"[*?\[]", source):
                assert (ROOT / source).exists(), f"COPY {args}: {source} does not exist"
        matched = [p for s in sources for p in ROOT.glob(s)]
        assert matched, f"COPY {args}: nothing in the repository matches"
        for path in matched:
            rel = path.relative_to(ROOT).as_posix()
            assert not ignored(rel), f"COPY {args}: {rel} is excluded by .dockerignore"
    for needed in ("pyproject.toml", "stream_monitor", "stream_monitor/cli.py"):
        assert not ignored(needed), f".dockerignore excludes {needed}"
    for local_state in (
        ".venv",
        ".git",
        ".demo",
        "bench/results",
        ".pytest_cache",
        "stream_monitor.egg-info",
        "stream_monitor/__pycache__/x.pyc",
    ):
        assert ignored(local_state), f".dockerignore does not exclude {local_state}"


def test_dockerfile_runs_as_non_root_with_a_healthcheck_on_healthz() -> None:
    stage = final_stage(dockerfile_instructions())
    users = [args for keyword, args in stage if keyword == "USER"]
    assert users, "the image must switch to a non-root USER"
    user = users[-1].split(":")[0]
    assert user not in ("root", "0"), f"USER {users[-1]} is root"
    healthchecks = [args for keyword, args in stage if keyword == "HEALTHCHECK"]
    assert len(healthchecks) == 1
    check = healthchecks[0]
    assert "CMD" in check and "urllib" in check and "curl" not in check
    url = re.search(r"http://[^'\"\s]+", check)
    assert url is not None
    parts = urlsplit(url.group(0))
    assert parts.path == "/healthz"
    assert parts.hostname in ("127.0.0.1", "localhost")


# -- docker-compose.yml --------------------------------------------------------------------


def test_compose_is_compose_spec_without_version() -> None:
    assert "version" not in compose()
    assert set(services()) >= {
        "kafka",
        "topics-init",
        "reference-init",
        MONITOR,
        "demo-producer",
        "prometheus",
        "grafana",
    }


def test_every_build_uses_the_dockerfile_that_exists() -> None:
    builds = {n: s["build"] for n, s in services().items() if "build" in s}
    assert set(builds) >= {"reference-init", MONITOR, "demo-producer"}
    for name, build in builds.items():
        context = build if isinstance(build, str) else build.get("context", ".")
        dockerfile = (
            "Dockerfile" if isinstance(build, str) else build.get("dockerfile", "Dockerfile")
        )
        path = (COMPOSE.parent / context / dockerfile).resolve()
        assert path == DOCKERFILE.resolve() and path.is_file(), f"{name}: {path}"
    assert set(project_services()) == set(builds)


def test_every_project_command_parses_with_the_real_cli() -> None:
    parser = strict_parser()
    for name, svc in project_services().items():
        assert "entrypoint" not in svc, f"{name}: keep the image's ENTRYPOINT"
        argv = command(name)
        assert argv, f"{name}: no command"
        try:
            parser.parse_args(argv)
        except SystemExit as exc:  # argparse exits on an unknown option or a bad value
            raise AssertionError(
                f"{name}: `stream-monitor {shlex.join(argv)}` does not parse"
            ) from exc


def test_monitor_command_gives_valid_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    for key in list(os.environ):
        if key.startswith("STREAM_MONITOR_"):
            monkeypatch.delenv(key)
    args = strict_parser().parse_args(command(MONITOR))
    assert args.command == "run"
    values = {n: getattr(args, n) for n in RUN_OPTIONS if hasattr(args, n)}
    values.pop("reference", None)  # a path inside the container
    settings = Settings(**values)
    assert settings.topic == demo.TOPIC
    assert settings.alerts_topic == demo.ALERTS_TOPIC
    assert settings.dead_letter_topic == demo.DLQ_TOPIC


def test_metrics_port_is_the_same_everywhere() -> None:
    port = int(option(command(MONITOR), "--metrics-port"))
    assert published(MONITOR).get(port) == port, "publish the metrics port as-is"

    stage = final_stage(dockerfile_instructions())
    exposed = {int(p.split("/")[0]) for k, a in stage if k == "EXPOSE" for p in a.split()}
    assert port in exposed
    check = next(a for k, a in stage if k == "HEALTHCHECK")
    url = re.search(r"http://[^'\"\s]+", check)
    assert url is not None and urlsplit(url.group(0)).port == port

    prom = load_yaml(PROMETHEUS)
    jobs = {job["job_name"]: job for job in prom["scrape_configs"]}
    job = jobs["stream-monitor"]
    assert job.get("metrics_path", "/metrics") == "/metrics"
    targets = [t for sc in job["static_configs"] for t in sc["targets"]]
    assert targets == [f"{MONITOR}:{port}"]
    assert "prometheus" in jobs


def test_topics_match_the_demo_and_topics_init() -> None:
    argv = command(MONITOR)
    assert option(argv, "--topic") == demo.TOPIC
    assert option(argv, "--alerts-topic") == demo.ALERTS_TOPIC

    init = services()["topics-init"]
    init_argv = as_list(init.get("entrypoint")) + as_list(init.get("command"))
    assert init_argv[0] == "/opt/kafka/bin/kafka-topics.sh"
    assert "--create" in init_argv and "--if-not-exists" in init_argv
    assert option(init_argv, "--topic") == demo.TOPIC
    assert int(option(init_argv, "--partitions")) == demo.PARTITIONS
    assert init["image"] == services()["kafka"]["image"]


def test_bootstrap_servers_are_the_advertised_kafka_listener() -> None:
    env = services()["kafka"]["environment"]
    advertised = {
        entry.split("://")[0]: entry.split("://")[1]
        for entry in str(env["KAFKA_ADVERTISED_LISTENERS"]).split(",")
    }
    internal = advertised["PLAINTEXT"]
    assert internal == "kafka:9092"
    assert option(command(MONITOR), "--bootstrap-servers") == internal
    assert option(command("demo-producer"), "--bootstrap-servers") == internal
    init = services()["topics-init"]
    init_argv = as_list(init.get("entrypoint")) + as_list(init.get("command"))
    assert option(init_argv, "--bootstrap-server") == internal


def test_kafka_is_a_single_kraft_node_with_a_healthcheck() -> None:
    kafka = services()["kafka"]
    assert kafka["image"] == "apache/kafka:4.1.1"
    env = {k: str(v) for k, v in kafka["environment"].items()}
    assert env["KAFKA_PROCESS_ROLES"] == "broker,controller"
    node = env["KAFKA_NODE_ID"]
    listeners = dict(e.split("://") for e in env["KAFKA_LISTENERS"].split(","))
    assert listeners["PLAINTEXT"] == ":9092"
    controller = env["KAFKA_CONTROLLER_LISTENER_NAMES"]
    assert controller in listeners
    assert (
        env["KAFKA_CONTROLLER_QUORUM_VOTERS"] == f"{node}@kafka:{listeners[controller].lstrip(':')}"
    )
    protocols = dict(e.split(":") for e in env["KAFKA_LISTENER_SECURITY_PROTOCOL_MAP"].split(","))
    assert set(listeners) <= set(protocols)
    for key in (
        "KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR",
        "KAFKA_TRANSACTION_STATE_LOG_REPLICATION_FACTOR",
        "KAFKA_TRANSACTION_STATE_LOG_MIN_ISR",
    ):
        assert env[key] == "1", key
    assert env["KAFKA_GROUP_INITIAL_REBALANCE_DELAY_MS"] == "0"
    test = as_list(kafka["healthcheck"]["test"])
    assert "/opt/kafka/bin/kafka-broker-api-versions.sh" in test
    assert option(test, "--bootstrap-server") == "localhost:9092"


def test_startup_order() -> None:
    def conditions(name: str) -> dict[str, str]:
        deps = services()[name].get("depends_on", {})
        if isinstance(deps, list):
            return {d: "service_started" for d in deps}
        return {d: spec.get("condition", "service_started") for d, spec in deps.items()}

    assert conditions("topics-init") == {"kafka": "service_healthy"}
    assert conditions(MONITOR) == {
        "kafka": "service_healthy",
        "topics-init": "service_completed_successfully",
        "reference-init": "service_completed_successfully",
    }
    assert conditions("demo-producer") == {
        MONITOR: "service_started",
        "topics-init": "service_completed_successfully",
    }
    assert services()[MONITOR]["restart"] == "on-failure"
    for one_shot in ("topics-init", "reference-init", "demo-producer"):
        assert services()[one_shot].get("restart", "no") == "no", one_shot


def test_reference_volume_is_written_then_read() -> None:
    init_argv = command("reference-init")
    assert "--references-only" in init_argv
    workdir = option(init_argv, "--workdir")
    init_mounts = dict((t, s) for s, t in mounts("reference-init"))
    volume = init_mounts[workdir]
    assert not is_host_path(volume) and volume in (compose().get("volumes") or {})

    # demo.write_references writes WORKDIR/reference; the monitor sees the same volume
    # (read-only) at its own mount point.
    written = (Path(workdir) / "reference").relative_to(
        next(t for s, t in mounts("reference-init") if s == volume)
    )
    target = next(t for s, t in mounts(MONITOR) if s == volume)
    assert f"{volume}:{target}:ro" in services()[MONITOR]["volumes"], "mount it read-only"
    assert Path(option(command(MONITOR), "--reference")) == Path(target) / written


def test_named_volumes_are_declared_and_host_paths_exist() -> None:
    declared = set(compose().get("volumes") or {})
    for name in services():
        for source, _target in mounts(name):
            if is_host_path(source):
                path = (COMPOSE.parent / source).resolve()
                assert path.exists(), f"{name}: {source} does not exist in the repository"
                assert ROOT in (path, *path.parents), f"{name}: {source} is outside the repo"
            else:
                assert source in declared, f"{name}: volume {source} is not declared"


def test_one_shot_project_containers_have_no_healthcheck() -> None:
    # The image's HEALTHCHECK polls /healthz, which only `run` serves.
    for name, svc in project_services().items():
        if command(name)[0] != "run":
            assert svc.get("healthcheck", {}).get("disable") is True, name


def test_images_are_pinned() -> None:
    for name, svc in services().items():
        image = svc.get("image")
        if image is None:
            continue
        tag = image.rsplit(":", 1)[-1] if ":" in image.split("/")[-1] else ""
        assert tag and tag != "latest", f"{name}: pin {image}"


def test_prometheus_and_grafana_mounts() -> None:
    assert mount_target("prometheus", PROMETHEUS) == "/etc/prometheus/prometheus.yml"
    assert published("prometheus") == {9090: 9090}
    assert mount_target("grafana", GRAFANA / "provisioning") == "/etc/grafana/provisioning"
    dashboards_target = mount_target("grafana", GRAFANA / "dashboards")
    providers = load_yaml(PROVIDERS)["providers"]
    assert [p["options"]["path"] for p in providers] == [dashboards_target]
    assert published("grafana") == {3000: 3000}
    env = {k: str(v) for k, v in services()["grafana"]["environment"].items()}
    assert env["GF_AUTH_ANONYMOUS_ENABLED"] == "true"
    assert env["GF_AUTH_ANONYMOUS_ORG_ROLE"] == "Viewer"
    home = env.get("GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH")
    if home is not None:
        assert home == f"{dashboards_target}/{DASHBOARD.name}"


# -- Prometheus ----------------------------------------------------------------------------


def test_prometheus_scrapes_every_5s() -> None:
    prom = load_yaml(PROMETHEUS)
    assert prom["global"]["scrape_interval"] == "5s"


def test_promtool_accepts_the_config() -> None:
    promtool = shutil.which("promtool") or "/usr/bin/promtool"
    if not Path(promtool).is_file():
        pytest.skip("promtool is not installed (Debian package `prometheus`)")
    result = subprocess.run(
        [promtool, "check", "config", str(PROMETHEUS)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


# -- Grafana -------------------------------------------------------------------------------


def test_datasource_points_at_the_prometheus_service() -> None:
    sources = load_yaml(DATASOURCE)["datasources"]
    assert len(sources) == 1
    ds = sources[0]
    assert ds["name"] == "Prometheus" and ds["type"] == "prometheus" and ds["isDefault"] is True
    url = urlsplit(ds["url"])
    assert url.hostname == "prometheus"
    assert url.port in published("prometheus")


def test_dashboard_panels_use_the_provisioned_datasource() -> None:
    uid = load_yaml(DATASOURCE)["datasources"][0]["uid"]
    assert uid == "prometheus"
    data = dashboard()
    assert data["uid"] == "stream-monitor"
    refs = []
    for panel in all_panels(data["panels"]):
        if panel.get("type") == "row":
            continue
        refs.append((panel["title"], panel.get("datasource")))
        refs.extend((panel["title"], t.get("datasource")) for t in panel.get("targets", []))
    refs.extend(
        (v["name"], v.get("datasource"))
        for v in data["templating"]["list"]
        if v.get("type") == "query"
    )
    for where, ref in refs:
        assert isinstance(ref, dict) and ref.get("uid") == uid, f"{where}: datasource {ref}"


def test_dashboard_variables_and_panels() -> None:
    data = dashboard()
    variables = {v["name"]: v for v in data["templating"]["list"]}
    model = variables["model"]
    query = model["query"]["query"] if isinstance(model["query"], dict) else model["query"]
    assert query == "label_values(stream_monitor_events_total, model)"
    panels = [p for p in all_panels(data["panels"]) if p.get("type") != "row"]
    ids = [p["id"] for p in panels]
    assert len(ids) == len(set(ids)), "panel ids must be unique"
    for panel in panels:
        assert panel.get("targets"), f"{panel['title']}: no query"
        assert {"h", "w", "x", "y"} <= set(panel["gridPos"])
        refs = [t["refId"] for t in panel["targets"]]
        assert len(refs) == len(set(refs)), f"{panel['title']}: duplicate refId"
        if "repeat" in panel:
            assert panel["repeat"] in variables
    used = set()
    for expr in dashboard_queries():
        used.update(re.findall(r"\$\{?(\w+)", expr))
    builtin = {v for v in used if v.startswith("__")}
    assert used - builtin <= set(variables), (
        f"undefined variables: {used - builtin - set(variables)}"
    )
    exprs = "\n".join(dashboard_queries())
    for metric in (
        "stream_monitor_drift_score",
        "stream_monitor_drift_threshold",
        "stream_monitor_drift_detected",
        "stream_monitor_events_total",
        "stream_monitor_dead_letters_total",
        "stream_monitor_alerts_total",
        "stream_monitor_prediction_latency_seconds_bucket",
        "stream_monitor_consumer_lag",
        "stream_monitor_retrain_recommended",
    ):
        assert metric in exprs, f"no panel shows {metric}"
    for quantile in ("0.5", "0.95", "0.99"):
        assert f"histogram_quantile({quantile}," in exprs


def test_metric_name_extraction() -> None:
    assert metric_names(
        "histogram_quantile(0.99, sum by (le, model) "
        '(rate(foo_bucket{model=~"$model"}[$__rate_interval])))'
    ) == {"foo_bucket"}
    assert metric_names("label_values(foo_total, model)") == {"foo_total"}
    assert metric_names('a_total / on (model) group_left b{x="y z"} offset 5m') == {"a_total", "b"}
    assert metric_names("sum without (le) (rate(c[1m])) > 0.5") == {"c"}


def test_dashboard_uses_only_metrics_the_registry_exposes() -> None:
    exposed = exposed_metric_names()
    assert "stream_monitor_events_total" in exposed
    assert "stream_monitor_prediction_latency_seconds_bucket" in exposed
    for expr in dashboard_queries():
        names = metric_names(expr)
        assert names, f"no metric in {expr!r}"
        unknown = names - exposed
        assert not unknown, f"{expr!r} uses {sorted(unknown)}, not exposed by Metrics()"
