"""Prometheus against the real thing: the alerting rules (promtool), the configuration, and a
real Prometheus scraping a real monitor fed by the real broker, queried with every
expression of the Grafana dashboard and of the alerting rules.

Needs Debian's `prometheus` package (/usr/bin/prometheus, /usr/bin/promtool).
"""

from __future__ import annotations

import json
import math
import re
import shutil
import subprocess
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

import pytest
import yaml

from stream_monitor.tools.synthetic import SyntheticModel
from tests.conftest import free_port
from tests.kafka_helpers import (
    MonitorProcess,
    create_topics,
    event_records,
    produce,
    unique,
    wait_for,
)
from tests.test_kafka_e2e import write_references

PROMETHEUS_BIN = Path("/usr/bin/prometheus")
PROMTOOL = Path(shutil.which("promtool") or "/usr/bin/promtool")

if not PROMETHEUS_BIN.is_file() or not PROMTOOL.is_file():
    pytest.skip(
        "Prometheus is not installed (Debian package `prometheus`: /usr/bin/prometheus and "
        "/usr/bin/promtool)",
        allow_module_level=True,
    )

pytestmark = pytest.mark.kafka

ROOT = Path(__file__).resolve().parent.parent
PROM_DIR = ROOT / "deploy" / "prometheus"
PROMETHEUS_YML = PROM_DIR / "prometheus.yml"
RULES = PROM_DIR / "rules" / "stream-monitor.rules.yml"
RULE_TESTS = PROM_DIR / "rules" / "stream-monitor.rules.test.yml"
ALERTMANAGER_YML = PROM_DIR / "alertmanager.yml"
COMPOSE = ROOT / "docker-compose.yml"
DASHBOARD = ROOT / "deploy" / "grafana" / "dashboards" / "stream-monitor.json"

MODEL = SyntheticModel("fraud-scorer", drift_start=2000, drift_shift=2.0)
PHASE_ONE, TOTAL = 3000, 4000  # two batches, so that Prometheus sees the counters increase
# Concrete values of the dashboard's variables where a query needs one (`=` matchers);
# `=~"$var"` matchers become `.*` (Grafana's "All").
VARIABLES = {"model": MODEL.name, "kind": "input_drift"}
TIMEOUT = 60.0


# -- helpers -----------------------------------------------------------------------------


def load_yaml(path: Path) -> Any:
    return yaml.safe_load(path.read_text(encoding="utf-8"))


def promtool(*args: str, stdin: bytes | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(PROMTOOL), *args],
        input=stdin.decode() if stdin is not None else None,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def alert_rules() -> list[dict[str, Any]]:
    return [r for g in load_yaml(RULES)["groups"] for r in g["rules"] if "alert" in r]


def local_config(monitor_port: int, prometheus_port: int) -> dict[str, Any]:
    """deploy/prometheus/prometheus.yml for a local run: 1 s scrapes of the given ports, the
    same rule files (absolute paths), no Alertmanager."""
    config: dict[str, Any] = load_yaml(PROMETHEUS_YML)
    config["global"].update(scrape_interval="1s", scrape_timeout="1s", evaluation_interval="1s")
    config["rule_files"] = [str(PROM_DIR / pattern) for pattern in config["rule_files"]]
    config.pop("alerting", None)
    targets = {
        "stream-monitor": f"127.0.0.1:{monitor_port}",
        "prometheus": f"127.0.0.1:{prometheus_port}",
    }
    for job in config["scrape_configs"]:
        assert job["job_name"] in targets, f"no local target for job {job['job_name']}"
        job["static_configs"] = [{"targets": [targets[job["job_name"]]]}]
    return config


def dashboard_queries() -> list[tuple[str, str]]:
    """(where, expression) of every panel target and query variable of the dashboard."""

    def panels(items: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
        for panel in items:
            yield panel
            yield from panels(panel.get("panels", []))

    data = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    queries = [
        (f"panel {p['title']!r} {t['refId']}", t["expr"])
        for p in panels(data["panels"])
        for t in p.get("targets", [])
    ]
    for var in data["templating"]["list"]:
        if var.get("type") == "query":
            query = var["query"]
            queries.append(
                (f"variable {var['name']}", query["query"] if isinstance(query, dict) else query)
            )
    return queries


def to_promql(expr: str) -> str:
    """A Grafana expression with its variables replaced."""
    text = re.sub(r"\$\{?__(rate_interval|interval|range)\}?", "1m", expr)
    text = re.sub(r'=~\s*"\$\{?\w+(?::\w+)?\}?"', '=~".*"', text)
    text = re.sub(r"\$\{?(\w+)(?::\w+)?\}?", lambda m: VARIABLES[m.group(1)], text)
    assert "$" not in text, text
    return text


class PrometheusServer:
    """A real Prometheus on a free port, with its own storage, stopped by `stop()`."""

    def __init__(self, config: dict[str, Any], workdir: Path, port: int) -> None:
        self.port = port
        workdir.mkdir(parents=True, exist_ok=True)
        self.config_path = workdir / "prometheus.yml"
        self.config_path.write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
        self.log_path = workdir / "prometheus.log"
        self._log = self.log_path.open("wb")
        self.proc = subprocess.Popen(
            [
                str(PROMETHEUS_BIN),
                f"--config.file={self.config_path}",
                f"--storage.tsdb.path={workdir / 'data'}",
                f"--web.listen-address=127.0.0.1:{port}",
            ],
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )

    def _get(self, path: str) -> tuple[int, bytes]:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}{path}", timeout=5) as r:
                return int(r.status), r.read()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read()
        except OSError:
            return 0, b""

    def wait_ready(self) -> None:
        wait_for(
            lambda: self.proc.poll() is not None or self._get("/-/ready")[0] == 200,
            TIMEOUT,
            "Prometheus ready",
        )
        assert self.proc.poll() is None, self.log()

    def api(self, endpoint: str, **params: str) -> Any:
        query = urllib.parse.urlencode(params)
        code, body = self._get(f"/api/v1/{endpoint}?{query}")
        assert code == 200, f"{endpoint} {params}: HTTP {code} {body[:500]!r}"
        answer = json.loads(body)
        assert answer["status"] == "success", answer
        return answer["data"]

    def query(self, expr: str) -> list[dict[str, Any]]:
        data = self.api("query", query=expr)
        assert data["resultType"] == "vector", f"{expr}: {data['resultType']}"
        result: list[dict[str, Any]] = data["result"]
        return result

    def log(self) -> str:
        if not self._log.closed:
            self._log.flush()
        return self.log_path.read_text(errors="replace")[-5000:]

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(30)
        self._log.close()


def values(result: list[dict[str, Any]]) -> list[float]:
    return [float(sample["value"][1]) for sample in result]


def stop_monitor(monitor: MonitorProcess) -> None:
    try:
        code = monitor.terminate(timeout=30)
    except subprocess.TimeoutExpired:
        monitor.kill()
        raise AssertionError("the monitor did not stop on SIGTERM:\n" + monitor.log()) from None
    assert code == 0, monitor.log()


# -- promtool: rules, rule unit tests, configs ---------------------------------------------


def test_promtool_check_rules() -> None:
    result = promtool("check", "rules", str(RULES))
    assert result.returncode == 0, result.stdout + result.stderr
    rules = [r for g in load_yaml(RULES)["groups"] for r in g["rules"]]
    assert f"SUCCESS: {len(rules)} rules found" in result.stdout


def test_rules_use_only_the_monitors_metrics() -> None:
    from stream_monitor.sinks.prometheus import Metrics

    exposed: set[str] = set()
    for family in Metrics().registry.collect():
        suffixes = {"counter": ("_total",), "histogram": ("_bucket", "_sum", "_count")}
        exposed.update(family.name + s for s in suffixes.get(family.type, ("",)))
    for rule in alert_rules():
        names = set(re.findall(r"\bstream_monitor_\w+", rule["expr"]))
        assert names <= exposed, f"{rule['alert']}: {sorted(names - exposed)} not exposed"
        labels, annotations = rule.get("labels", {}), rule.get("annotations", {})
        assert "severity" in labels, rule["alert"]
        assert {"summary", "description"} <= set(annotations), rule["alert"]


def test_promtool_rule_unit_tests_pass_and_cover_every_rule() -> None:
    result = promtool("test", "rules", str(RULE_TESTS))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout
    firing: set[str] = set()
    silent: set[str] = set()
    for case in load_yaml(RULE_TESTS)["tests"]:
        for check in case.get("alert_rule_test", []):
            (firing if check.get("exp_alerts") else silent).add(check["alertname"])
    names = {rule["alert"] for rule in alert_rules()}
    assert names == firing, f"no firing case for {names - firing}, unknown: {firing - names}"
    assert names == silent, f"no silent case for {names - silent}, unknown: {silent - names}"


def test_promtool_check_config_of_the_repository_and_the_test() -> None:
    result = promtool("check", "config", str(PROMETHEUS_YML))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS: 1 rule files found" in result.stdout


def test_promtool_check_config_of_the_generated_config(tmp_path: Path) -> None:
    path = tmp_path / "prometheus.yml"
    path.write_text(yaml.safe_dump(local_config(9108, 9090)), encoding="utf-8")
    result = promtool("check", "config", str(path))
    assert result.returncode == 0, result.stdout + result.stderr
    assert str(RULES) in result.stdout, "the generated config must load the same rules"


def test_rule_files_resolve_here_and_in_docker_compose() -> None:
    config = load_yaml(PROMETHEUS_YML)
    patterns = config["rule_files"]
    assert patterns
    for pattern in patterns:
        assert not pattern.startswith("/"), "relative to the config file, for both places"
        matched = sorted(PROM_DIR.glob(pattern))
        assert matched == [RULES], f"{pattern} matches {matched}"
    # docker-compose: the config's directory in the container holds the rules directory
    prometheus = load_yaml(COMPOSE)["services"]["prometheus"]
    mounts = {}
    for entry in prometheus["volumes"]:
        source, target = str(entry).split(":")[:2]
        mounts[(COMPOSE.parent / source).resolve()] = PurePosixPath(target)
    config_target = mounts[PROMETHEUS_YML.resolve()]
    for pattern in patterns:
        rules_dir = (PROM_DIR / pattern).parent.resolve()
        assert rules_dir in mounts, f"docker-compose does not mount {rules_dir}"
        assert mounts[rules_dir] == (config_target.parent / pattern).parent


def test_alerting_goes_to_the_alertmanager_service() -> None:
    alertmanagers = load_yaml(PROMETHEUS_YML)["alerting"]["alertmanagers"]
    targets = [t for am in alertmanagers for sc in am["static_configs"] for t in sc["targets"]]
    assert targets == ["alertmanager:9093"]
    service = load_yaml(COMPOSE)["services"]["alertmanager"]
    image = service["image"]
    assert re.fullmatch(r"prom/alertmanager:v\d+\.\d+\.\d+", image), f"pin {image}"
    assert "9093:9093" in [str(p) for p in service["ports"]]
    # the image's default --config.file
    sources = {
        (COMPOSE.parent / str(v).split(":")[0]).resolve(): str(v).split(":")[1]
        for v in service["volumes"]
    }
    assert sources[ALERTMANAGER_YML.resolve()] == "/etc/alertmanager/alertmanager.yml"


def test_alertmanager_config_is_minimal_and_valid() -> None:
    config = load_yaml(ALERTMANAGER_YML)
    receivers = [r["name"] for r in config["receivers"]]
    assert len(receivers) == len(set(receivers))
    route = config["route"]
    assert route["receiver"] in receivers
    for sub in route.get("routes", []):
        assert sub["receiver"] in receivers
    assert "slack_configs" in ALERTMANAGER_YML.read_text(encoding="utf-8")  # commented example
    amtool = shutil.which("amtool")
    if amtool is not None:  # Debian package prometheus-alertmanager; not required
        result = subprocess.run(
            [amtool, "check-config", str(ALERTMANAGER_YML)],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert result.returncode == 0, result.stdout + result.stderr


# -- a real Prometheus scraping a real monitor -------------------------------------------


@dataclass
class Stack:
    monitor: MonitorProcess
    prometheus: PrometheusServer


@pytest.fixture(scope="module")
def stack(kafka_bootstrap: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    tmp = tmp_path_factory.mktemp("prometheus")
    topic, alerts_topic = unique("predictions"), unique("alerts")
    create_topics(kafka_bootstrap, [topic], partitions=3)
    # the default, exactly-once: the lag comes from what the monitor consumed, not from
    # offsets the consumer committed (a transactional producer commits them)
    monitor = MonitorProcess(
        kafka_bootstrap,
        topic,
        alerts_topic,
        unique("group"),
        write_references(tmp / "ref", [MODEL]),
        tmp / "monitor.log",
        "--feature-metrics",
        "20",  # the dashboard's per-feature panel
    )
    prometheus: PrometheusServer | None = None
    try:
        for attempt in range(3):  # a free port can be taken before Prometheus binds it
            port = free_port()
            prometheus = PrometheusServer(
                local_config(monitor.port, port), tmp / f"prom-{attempt}", port
            )
            try:
                prometheus.wait_ready()
                break
            except AssertionError:
                prometheus.stop()
                if "address already in use" not in prometheus.log() or attempt == 2:
                    raise
        assert prometheus is not None
        server = prometheus
        monitor.wait_ready()
        bad = (MODEL.name.encode(), b"{not json")  # one dead letter per batch

        def produced(start: int, stop: int) -> None:
            records = event_records(MODEL.events(start, stop - start))
            produce(kafka_bootstrap, topic, [*records, bad])
            wait_for(
                lambda: monitor.events_committed() >= stop, TIMEOUT, f"{stop} events committed"
            )
            ok = f'stream_monitor_events_total{{model="{MODEL.name}",status="ok"}}'
            wait_for(
                lambda: [v for v in values(server.query(ok)) if v >= stop],
                TIMEOUT,
                f"Prometheus scraping {stop} events",
            )

        produced(0, PHASE_ONE)
        produced(PHASE_ONE, TOTAL)
        yield Stack(monitor, server)
    except BaseException:
        print("monitor log:\n" + monitor.log())
        if prometheus is not None:
            print("prometheus log:\n" + prometheus.log())
        raise
    finally:
        try:
            stop_monitor(monitor)
        finally:
            if prometheus is not None:
                prometheus.stop()


def test_prometheus_sees_the_drift(stack: Stack) -> None:
    expr = f'stream_monitor_drift_score{{model="{MODEL.name}",kind="input_drift"}}'
    scores = wait_for(
        lambda: [v for v in values(stack.prometheus.query(expr)) if v > 0.1],
        TIMEOUT,
        "a drift score above 0.1 in Prometheus",
    )
    assert len(scores) == 1
    up = stack.prometheus.query('up{job="stream-monitor"}')
    assert values(up) == [1.0]


def test_promtool_accepts_a_real_scrape(stack: Stack) -> None:
    code, body = stack.monitor.get("/metrics")
    assert code == 200
    assert b"stream_monitor_dead_letters_total" in body
    assert b"stream_monitor_prediction_latency_seconds_bucket" in body
    result = promtool("check", "metrics", stdin=body)
    assert result.returncode == 0, result.stdout + result.stderr
    assert not (result.stdout + result.stderr).strip(), result.stdout + result.stderr


@pytest.mark.parametrize(
    ("where", "expr"), [pytest.param(w, e, id=w) for w, e in dashboard_queries()]
)
def test_dashboard_query_returns_data(stack: Stack, where: str, expr: str) -> None:
    label_values = re.fullmatch(r"\s*label_values\((.*),\s*(\w+)\s*\)\s*", expr)
    if label_values:  # a Grafana variable: the series of the selector, with the label
        promql, label = to_promql(label_values.group(1)), label_values.group(2)
        found = wait_for(
            lambda: {s["metric"].get(label) for s in stack.prometheus.query(promql)} - {None},
            TIMEOUT,
            f"{where}: values of {label} in {promql}",
        )
        assert MODEL.name in found or label != "model"
        return
    promql = to_promql(expr)
    # rate() needs two samples in its range, the consumer lag a librdkafka statistics
    # report (every 5 s): wait for a finite value
    result = wait_for(
        lambda: [v for v in values(stack.prometheus.query(promql)) if math.isfinite(v)],
        TIMEOUT,
        f"{where}: data for {promql}",
    )
    assert result


def test_alerting_rules_are_loaded_and_evaluate(stack: Stack) -> None:
    names = {rule["alert"] for rule in alert_rules()}

    def evaluated() -> dict[str, dict[str, Any]]:
        groups = stack.prometheus.api("rules", type="alert")["groups"]
        rules = {r["name"]: r for g in groups for r in g["rules"]}
        if set(rules) != names or any(r["health"] == "unknown" for r in rules.values()):
            return {}
        return rules

    rules = wait_for(evaluated, TIMEOUT, "every alerting rule evaluated")
    for name, rule in rules.items():
        assert rule["health"] == "ok", f"{name}: {rule.get('lastError')}"
    for rule in alert_rules():  # each expression on its own, through the query API
        stack.prometheus.query(rule["expr"])


def test_drift_alert_is_pending_for_the_drifting_model(stack: Stack) -> None:
    def pending() -> list[dict[str, Any]]:
        alerts = stack.prometheus.api("alerts")["alerts"]
        return [
            a
            for a in alerts
            if a["labels"]["alertname"] == "StreamMonitorDriftDetected"
            and a["labels"].get("kind") == "input_drift"
        ]

    (alert,) = wait_for(pending, TIMEOUT, "StreamMonitorDriftDetected pending")
    assert alert["state"] == "pending"  # `for: 5m`
    assert alert["labels"]["model"] == MODEL.name
    assert alert["labels"]["severity"] == "warning"
    assert "score 0." in alert["annotations"]["description"]
    others = {a["labels"]["alertname"] for a in stack.prometheus.api("alerts")["alerts"]}
    assert not others & {
        "StreamMonitorModelSilent",
        "StreamMonitorDown",
        "StreamMonitorAbsent",
        "StreamMonitorConsumerLagGrowing",
    }
