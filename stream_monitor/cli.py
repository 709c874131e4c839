"""Command line: `run`, `replay`, `backtest`, `alerts`, `demo`, `reference publish`. Wiring
only; the work lives in the modules."""

from __future__ import annotations

import argparse
import gc
import logging
import signal
import sys
from pathlib import Path
from typing import Any

from stream_monitor.alerts.contract import KINDS
from stream_monitor.config.loading import ConfigError, load_settings
from stream_monitor.config.settings import Settings
from stream_monitor.offline.progress import Progress
from stream_monitor.offline.replay import add_replay_arguments
from stream_monitor.reference.compact import compact_references
from stream_monitor.reference.loading import load_references
from stream_monitor.reference.prepared import InvalidReference, PreparedReference
from stream_monitor.tools import alerts_tail
from stream_monitor.tools.demo_options import add_demo_arguments

log = logging.getLogger("stream_monitor")

_HELP = {
    "bootstrap_servers": "Kafka bootstrap servers",
    "topic": "predictions topic",
    "alerts_topic": "alerts topic",
    "dlq_topic": "dead-letter topic (default: <topic>.dlq)",
    "group_id": "consumer group id",
    "reference": "reference data: a directory of <model>.jsonl (.csv, .parquet) or one file",
    "metrics_port": "port of /metrics, /healthz, /readyz, /status (0: any free port)",
    "metrics_host": "bind address of the HTTP endpoints",
    "auto_offset_reset": "where a new group starts reading",
    "batch_size": "messages per consume() call",
    "kafka": "extra librdkafka setting KEY=VALUE (repeatable)",
    "log_level": "log level",
}


def _add_settings_options(parser: argparse.ArgumentParser, names: list[str]) -> None:
    """One `--option-name` per settings field; only options given reach the settings."""
    fields = Settings.model_fields
    for name in names:
        info = fields[name]
        flag = "--" + name.replace("_", "-")
        help_text = _HELP.get(name) or info.description or name
        default = info.get_default(call_default_factory=True)
        shown = "" if default in (None, {}) else f" (default: {default})"
        if name == "kafka":
            parser.add_argument(
                flag,
                action="append",
                default=argparse.SUPPRESS,
                metavar="KEY=VALUE",
                help=help_text,
            )
        else:
            parser.add_argument(flag, dest=name, default=argparse.SUPPRESS, help=help_text + shown)


def _cli_values(args: argparse.Namespace, names: list[str]) -> dict[str, Any]:
    values = {n: getattr(args, n) for n in names if hasattr(args, n)}
    if "kafka" in values:
        pairs: dict[str, str] = {}
        for item in values["kafka"]:
            key, sep, value = item.partition("=")
            if not sep:
                raise ConfigError(
                    f"invalid configuration:\n  kafka: expected KEY=VALUE, got {item!r}"
                )
            pairs[key.strip()] = value.strip()
        values["kafka"] = pairs
    return values


def _settings(args: argparse.Namespace, names: list[str]) -> Settings:
    return load_settings(_cli_values(args, names), args.config)


def _references(settings: Settings) -> dict[str, PreparedReference]:
    for note in settings.silent_window_options():
        log.warning("%s", note)
    if settings.reference is None:
        log.warning("no --reference: every model needs --bootstrap-reference to be drift-checked")
        return {}
    budget = settings.calibrate_false_alarm_events
    refs = load_references(
        settings.reference, settings.prediction_bins, keep_rows=budget is not None
    )
    if budget is not None:  # calibration resamples the whole reference: before compaction
        calibrate(settings, refs, budget)
    refs = compact_references(refs, settings.detector_settings())
    for name, ref in sorted(refs.items()):
        log.info("reference %s: %d events, %d features", name, ref.events, ref.n_features)
        for note in ref.notes:
            log.warning("reference %s: %s", name, note)
    return refs


def calibrate(settings: Settings, refs: dict[str, PreparedReference], budget: float) -> None:
    """Calibrated mode: each model's input-drift threshold from its reference (held-out
    resampling, docs/calibration.md); deterministic, so every member computes the same."""
    from stream_monitor.config.options import ModelSettings
    from stream_monitor.reference.calibration import calibrate_max_ks_threshold

    for name, ref in sorted(refs.items()):
        if ref.rows is None or ref.n_features == 0:
            continue
        own = settings.for_model(name)
        cal = calibrate_max_ks_threshold(ref.rows, own.window_size, own.check_every, budget)
        ref.rows = None  # only needed here
        override = settings.models.get(name) or ModelSettings()
        settings.models[name] = override.model_copy(update={"drift_threshold": cal.threshold})
        log.info(
            "model %s: calibrated input-drift threshold %.4f for one false alarm per "
            "%g events (%s)",
            name,
            cal.threshold,
            budget,
            cal.method,
        )


def _setup_logging(level: str) -> None:
    fmt = "%(asctime)s %(levelname)s %(name)s: %(message)s"
    logging.basicConfig(level=level, stream=sys.stderr, format=fmt)


def cmd_run(args: argparse.Namespace) -> int:
    settings = _settings(args, RUN_OPTIONS)
    _setup_logging(settings.log_level)
    stops: list[int] = []  # asked for while the references load (seconds): obeyed below
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda asked, _frame: stops.append(asked))
    refs = _references(settings)
    from stream_monitor.service.runtime import MonitorService  # Kafka client only where needed

    service = MonitorService(settings, refs)
    signal.signal(signal.SIGTERM, service.request_stop)
    signal.signal(signal.SIGINT, service.request_stop)
    signal.signal(signal.SIGHUP, service.models.request_reload)  # --reference read again
    if stops:
        service.request_stop(stops[0])
    gc.freeze()  # what start-up built lives as long as the process: out of every GC pass
    return service.run()


def cmd_replay(args: argparse.Namespace) -> int:
    from stream_monitor.offline.replay import run_replay

    settings = _settings(args, REPLAY_OPTIONS)
    _setup_logging(settings.log_level)
    for path in args.files:
        _check_input(path)
    refs = _references(settings)
    progress = _progress(args.files, "replay")
    summary = run_replay(args.files, settings, refs, args.out, args.bad_lines, progress)
    for line in summary.bad_report:
        log.warning("%s", line)
    log.info("replayed %s", summary)
    return 0


def _check_input(path: Path) -> None:
    if not path.is_file():
        raise ConfigError(f"no such file: {path}")


def _progress(paths: Path | list[Path], label: str) -> Progress:
    """Events/s and ETA on stderr, when stderr is a terminal (silent otherwise)."""
    try:
        size = sum(p.stat().st_size for p in ([paths] if isinstance(paths, Path) else paths))
    except OSError:
        size = 0
    return Progress(sys.stderr, size, label)


def _kinds(text: str | None) -> frozenset[str] | None:
    if text is None:
        return None
    kinds = frozenset(k.strip() for k in text.split(",") if k.strip())
    unknown = sorted(kinds - set(KINDS))
    if unknown or not kinds:
        raise ConfigError(
            f"invalid configuration:\n  kinds: unknown {unknown or text!r} "
            f"(known: {', '.join(KINDS)})"
        )
    return kinds


def _positive_int(text: str) -> int:
    value = int(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be a positive number of events, got {text}")
    return value


def cmd_backtest(args: argparse.Namespace) -> int:
    from stream_monitor.offline.backtest import run_backtest
    from stream_monitor.offline.report import ReportError, require_matplotlib, write_report
    from stream_monitor.offline.sweep import evaluate, parse_sweep, shadowed

    settings = _settings(args, REPLAY_OPTIONS)
    _setup_logging(settings.log_level)
    _check_input(args.file)
    kinds = _kinds(args.kinds)
    parse_sweep(args.sweep or [], settings.detector_settings())  # fail before any replay
    try:
        require_matplotlib()
    except ReportError as exc:
        print(f"stream-monitor: {exc}", file=sys.stderr)
        return 2
    refs = _references(settings)
    base = settings.detector_settings()  # after the references: with calibrated thresholds
    points = parse_sweep(args.sweep or [], base)
    for name, models in shadowed(base, points).items():
        log.warning("sweep of %s: models %s keep their own value", name, ", ".join(models))
    report: Path = args.report
    report.mkdir(parents=True, exist_ok=True)
    with open(report / "alerts.jsonl", "wb") as out:
        result = run_backtest(
            args.file, base, refs, settings.batch_size, _progress(args.file, "backtest"), out
        )
    log.info(
        "backtest: %d events (%d invalid), %d alerts in %.2f s (%.0f events/s)",
        result.events,
        result.invalid,
        len(result.alerts),
        result.seconds,
        result.events_per_second,
    )
    outcomes = []
    for i, point in enumerate(points, 1):
        run = run_backtest(
            args.file,
            point.settings,
            refs,
            settings.batch_size,
            _progress(args.file, f"sweep {i}/{len(points)} {point.label}"),
        )
        outcomes.append(evaluate(point.label, point.overrides, run, args.horizon, kinds))
        log.info("sweep %s: %d alerts", point.label, len(run.alerts))
    index = write_report(result, report, kinds, args.horizon, outcomes or None)
    log.info("report written to %s", index)
    return 0


def cmd_reference_publish(args: argparse.Namespace) -> int:
    from stream_monitor.service.reference_publish import publish_reference

    settings = _settings(args, PUBLISH_OPTIONS)
    _setup_logging(settings.log_level)
    if settings.references_topic is None:
        raise ConfigError("references_topic: not set (--references-topic NAME)")
    _check_input(args.file)
    try:
        m = publish_reference(settings, args.model, args.file, args.model_version)
    except RuntimeError as exc:
        print(f"stream-monitor: {exc}", file=sys.stderr)
        return 1
    print(f"published {m.key}: {m.reference_id} ({m.events} events, {m.chunks} chunks)")
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from stream_monitor.tools.demo import DemoOptions, run_demo

    _setup_logging("WARNING")
    return run_demo(
        DemoOptions(
            bootstrap_servers=args.bootstrap_servers,
            events_per_model=args.events_per_model,
            rate=args.rate,
            metrics_port=args.metrics_port,
            workdir=Path(args.workdir),
            start_broker=not args.no_broker,
            references_only=args.references_only,
            produce_only=args.produce_only,
        )
    )


# Mappings live in the YAML file (and the environment as JSON), except --kafka KEY=VALUE.
YAML_ONLY = ("features", "models", "test_thresholds", "webhooks", "segment_by", "compare_versions")
RUN_OPTIONS = [n for n in Settings.model_fields if n not in YAML_ONLY]
REPLAY_OPTIONS = [
    n
    for n in RUN_OPTIONS
    if n
    not in (
        "bootstrap_servers",
        "topic",
        "alerts_topic",
        "dlq_topic",
        "group_id",
        "metrics_port",
        "metrics_host",
        "auto_offset_reset",
        "kafka",
        "processing_guarantee",
        "commit_interval_ms",
        "state_topic",
        "instance_id",
        "labels_topic",  # a file has no labels topic: its events carry their actuals
        "label_horizon_events",
        "label_horizon_seconds",
    )
]

PUBLISH_OPTIONS = ["bootstrap_servers", "references_topic", "kafka", "prediction_bins", "log_level"]


def build_parser() -> argparse.ArgumentParser:
    """Every command and option. Long because it is a table of declarations, one per
    option, with no logic to split off."""
    parser = argparse.ArgumentParser(
        prog="stream-monitor",
        description="Drift, performance and latency monitoring of ML models on Kafka.",
    )
    sub = parser.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="consume the predictions topic until stopped")
    run.add_argument("--config", type=Path, help="YAML file of options (keys = option names)")
    _add_settings_options(run, RUN_OPTIONS)
    run.set_defaults(func=cmd_run)

    replay = sub.add_parser("replay", help="run the engine over JSONL files, write alerts")
    add_replay_arguments(replay)
    replay.add_argument("--config", type=Path, help="YAML file of options")
    _add_settings_options(replay, REPLAY_OPTIONS)
    replay.set_defaults(func=cmd_replay)

    backtest = sub.add_parser(
        "backtest",
        help="replay a JSONL file and write a report: scores, alerts, detection delays",
    )
    backtest.add_argument("file", type=Path, help="JSONL file of prediction events")
    backtest.add_argument(
        "--report", type=Path, required=True, help="directory of index.html and the plots"
    )
    backtest.add_argument("--config", type=Path, help="YAML file of options")
    backtest.add_argument(
        "--sweep",
        action="append",
        metavar="NAME=V1,V2,...",
        help="also replay with each value of this detector setting (repeatable: every "
        "combination); compares detection delays and false alarms in sweep.html",
    )
    backtest.add_argument(
        "--horizon",
        type=_positive_int,
        help="events after a known change point within which a firing alert is a detection, "
        "not a false alarm (default: twice the model's window)",
    )
    backtest.add_argument(
        "--kinds",
        help="comma-separated alert kinds that count as detections and false alarms (default: all)",
    )
    _add_settings_options(backtest, REPLAY_OPTIONS)
    backtest.set_defaults(func=cmd_backtest)

    tail = sub.add_parser("alerts", help="print alerts as they are published (operators)")
    alerts_tail.add_arguments(tail)
    tail.set_defaults(func=alerts_tail.run)

    demo = sub.add_parser("demo", help="local broker, monitor and drifting traffic; shows alerts")
    add_demo_arguments(demo)
    demo.set_defaults(func=cmd_demo)

    reference = sub.add_parser("reference", help="references on the references topic")
    actions = reference.add_subparsers(dest="action", required=True)
    publish = actions.add_parser(
        "publish", help="publish a model's reference (.jsonl, .csv, .parquet) for every member"
    )
    publish.add_argument("model", help="the model the reference is for")
    publish.add_argument("file", type=Path, help="the reference file")
    publish.add_argument("--version", dest="model_version", help="for this model_version only")
    publish.add_argument("--config", type=Path, help="YAML file of options")
    _add_settings_options(publish, PUBLISH_OPTIONS)
    publish.set_defaults(func=cmd_reference_publish)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        code: int = args.func(args)
    except (ConfigError, InvalidReference) as exc:
        print(f"stream-monitor: {exc}", file=sys.stderr)
        return 2
    return code


if __name__ == "__main__":
    sys.exit(main())
