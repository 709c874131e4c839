"""`stream-monitor alerts`: tail the alerts topic for operators.

Reads with `isolation.level=read_committed`, so alerts of aborted transactions (a monitor
that crashed mid-batch) never show, and each committed alert shows once. It joins a
throwaway consumer group and never commits, so it disturbs nothing and leaves nothing
behind. Each alert is printed as one human-readable line (`format_line`) or, with `--json`,
as the JSON line it was published as. It stops cleanly on SIGINT or SIGTERM, after `--max`
alerts, or after `--idle-timeout` seconds without a message (for scripts and tests).
"""

from __future__ import annotations

import argparse
import contextlib
import math
import os
import signal
import sys
import threading
import time
import uuid
from collections.abc import Iterator, Mapping
from types import FrameType
from typing import Any, TextIO

import orjson

PROG = "stream-monitor alerts"
MAX_LISTED_FEATURES = 10
POLL_S = 0.5  # longest wait in one poll: how quickly a signal is noticed


def _positive_int(text: str) -> int:
    value = int(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text}")
    return value


def _positive_float(text: str) -> float:
    value = float(text)
    if not value > 0 or not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"must be a positive number of seconds, got {text}")
    return value


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of `stream-monitor alerts`."""
    parser.add_argument(
        "--bootstrap-servers",
        default=os.environ.get("STREAM_MONITOR_BOOTSTRAP_SERVERS", "localhost:9092"),
        help="Kafka bootstrap servers (default: $STREAM_MONITOR_BOOTSTRAP_SERVERS or "
        "localhost:9092)",
    )
    parser.add_argument(
        "--topic",
        default=os.environ.get("STREAM_MONITOR_ALERTS_TOPIC", "alerts"),
        help="alerts topic (default: $STREAM_MONITOR_ALERTS_TOPIC or alerts)",
    )
    parser.add_argument(
        "--from-beginning",
        action="store_true",
        help="print the alerts already on the topic too (default: only new ones)",
    )
    parser.add_argument(
        "--json", action="store_true", help="print each alert as its JSON line, as published"
    )
    parser.add_argument(
        "--model",
        action="append",
        metavar="NAME",
        help="only this model's alerts (repeatable)",
    )
    parser.add_argument(
        "--kafka",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="extra librdkafka setting, e.g. security.protocol=SASL_SSL (repeatable)",
    )
    parser.add_argument(
        "--max", type=_positive_int, metavar="N", help="stop after printing N alerts"
    )
    parser.add_argument(
        "--connect-timeout",
        type=_positive_float,
        default=10.0,
        metavar="S",
        help="give up (exit 1) when no broker answers within S seconds (default: 10)",
    )
    parser.add_argument(
        "--idle-timeout",
        type=_positive_float,
        metavar="S",
        help="stop after S seconds without a message (counted from the start, then from the "
        "partition assignment and each message)",
    )


# -- the human form ----------------------------------------------------------------------


def _clean(value: object) -> str:
    """Printable text: names come from prediction events, so no terminal escapes."""
    text = str(value)
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else c.encode("unicode_escape").decode() for c in text)


def _num(value: object) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool) or not isinstance(value, int | float):
        return _clean(value)
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def format_line(alert: Mapping[str, Any]) -> str:
    """One line per alert, e.g.

    `2026-11-26T10:05:00.000Z FIRING   input_drift      model=fraud-scorer version=v1
    ks=0.158 threshold=0.1 severity=warning events_seen=8200 drifted=f00,f01 -> retrain`
    (on one line). Missing fields show as `-`: it never fails on an alert of another version.
    """
    status = _clean(alert.get("status") or "-").upper()
    kind = _clean(alert.get("kind") or "-")
    test = _clean(alert.get("test") or "score")
    parts = [
        _clean(alert.get("detected_at") or "-"),
        f"{status:<8}",
        f"{kind:<16}",
        f"model={_clean(alert.get('model') or '-')}",
        f"version={_clean(alert.get('model_version') or '-')}",
    ]
    if alert.get("segment") is not None:  # a model monitored per segment
        parts.append(f"segment={_clean(alert['segment'])}")
    details = alert.get("details")
    if isinstance(details, Mapping) and details.get("baseline_version") is not None:
        parts.append(f"versus={_clean(details['baseline_version'])}")  # against a baseline
    parts += [
        f"{test}={_num(alert.get('score'))}",
        f"threshold={_num(alert.get('threshold'))}",
        f"severity={_clean(alert.get('severity') or '-')}",
        f"events_seen={_num(alert.get('events_seen'))}",
    ]
    if alert.get("direction") is not None:  # sequential detection: which chart, since when
        parts.append(f"direction={_clean(alert['direction'])}")
    if alert.get("change_start_event") is not None:
        parts.append(f"change_start_event={_num(alert['change_start_event'])}")
    features = alert.get("features")
    if isinstance(features, list):
        drifted = [
            _clean(f.get("name", "?"))
            for f in features
            if isinstance(f, Mapping) and f.get("drifted")
        ]
        if drifted:
            shown = ",".join(drifted[:MAX_LISTED_FEATURES])
            more = len(drifted) - MAX_LISTED_FEATURES
            parts.append(f"drifted={shown}" + (f",+{more} more" if more > 0 else ""))
    if alert.get("recommendation"):
        parts.append(f"-> {_clean(alert['recommendation'])}")
    return " ".join(parts)


# -- consuming ---------------------------------------------------------------------------


def kafka_overrides(items: list[str] | None) -> dict[str, str]:
    """`--kafka KEY=VALUE` items as a dict; ValueError names a malformed one."""
    pairs: dict[str, str] = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"--kafka: expected KEY=VALUE, got {item!r}")
        pairs[key.strip()] = value.strip()
    return pairs


def consumer_config(args: argparse.Namespace) -> dict[str, Any]:
    """A throwaway group that never commits, reading committed alerts only.

    `--kafka` settings win (for security settings, say), as they do for `run`.
    """
    return {
        "bootstrap.servers": args.bootstrap_servers,
        "group.id": f"stream-monitor-alerts-{uuid.uuid4().hex[:12]}",
        "enable.auto.commit": False,
        "enable.auto.offset.store": False,
        "auto.offset.reset": "earliest" if args.from_beginning else "latest",
        "isolation.level": "read_committed",
        # librdkafka's own log lines (a connection refused 20 times a second) stay quiet:
        # errors reach `_Errors`, which says each once
        "log_level": 2,
        **kafka_overrides(args.kafka),
    }


@contextlib.contextmanager
def _stop_on_signals(stop: threading.Event) -> Iterator[None]:
    """SIGINT and SIGTERM set `stop` (main thread only; elsewhere signals stay as they are)."""

    def handler(signum: int, frame: FrameType | None) -> None:
        stop.set()

    previous: dict[int, Any] = {}
    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGINT, signal.SIGTERM):
            previous[sig] = signal.signal(sig, handler)
    try:
        yield
    finally:
        for signum, old in previous.items():
            signal.signal(signum, old)


class _Errors:
    """Kafka errors: reported once each on stderr; fatal ones end the command."""

    def __init__(self, err: TextIO) -> None:
        self._err = err
        self._seen: set[str] = set()
        self.fatal: str | None = None
        self.quiet = False  # the command has said why it ends: nothing more

    def __call__(self, error: Any) -> None:
        from confluent_kafka import KafkaError

        text = error.str()
        fatal_codes = (
            KafkaError._AUTHENTICATION,
            KafkaError.SASL_AUTHENTICATION_FAILED,
            KafkaError.TOPIC_AUTHORIZATION_FAILED,
            KafkaError.GROUP_AUTHORIZATION_FAILED,
        )
        if error.fatal() or error.code() in fatal_codes:
            self.fatal = text
        elif text not in self._seen and not self.quiet:
            self._seen.add(text)
            print(f"{PROG}: kafka: {text}", file=self._err, flush=True)


def _topic_problem(consumer: Any, args: argparse.Namespace) -> str | None:
    """Why the topic cannot be tailed, in one line: no broker answered within
    `--connect-timeout`, or the topic does not exist; None when it can."""
    from confluent_kafka import KafkaException

    try:
        metadata = consumer.list_topics(args.topic, timeout=args.connect_timeout)
    except KafkaException:
        return (
            f"no Kafka broker answered at {args.bootstrap_servers} within "
            f"{args.connect_timeout:g} s"
        )
    topic = metadata.topics.get(args.topic)
    if topic is None or topic.error is not None:
        return f"topic {args.topic!r} does not exist on {args.bootstrap_servers}"
    return None


def run(args: argparse.Namespace) -> int:
    """Tail the alerts topic until a signal, `--max` or `--idle-timeout`. Exit code: 0 on
    a clean stop, 1 when no broker answers, the topic does not exist or a Kafka error is
    unrecoverable, 2 on a bad option.

    Kept whole: the consumer's life (assign, poll, render, stop on a signal) in one place.
    """
    out, err = sys.stdout, sys.stderr
    try:
        conf = consumer_config(args)
    except ValueError as exc:
        print(f"{PROG}: {exc}", file=err)
        return 2
    from confluent_kafka import Consumer, KafkaError, KafkaException

    models = set(args.model) if args.model else None
    errors = _Errors(err)
    stop = threading.Event()
    last_activity = time.monotonic()

    def on_assign(consumer: Any, partitions: list[Any]) -> None:
        nonlocal last_activity
        last_activity = time.monotonic()

    try:
        consumer = Consumer({**conf, "error_cb": errors})
    except KafkaException as exc:
        print(f"{PROG}: {exc}", file=err)
        return 2
    printed = 0
    with _stop_on_signals(stop):
        try:
            problem = _topic_problem(consumer, args)
            if problem is not None:
                errors.quiet = True
                print(f"{PROG}: {problem}", file=err, flush=True)
                return 1
            consumer.subscribe([args.topic], on_assign=on_assign)
            while not stop.is_set():
                if errors.fatal is not None:
                    print(f"{PROG}: unrecoverable Kafka error: {errors.fatal}", file=err)
                    return 1
                wait = POLL_S
                if args.idle_timeout is not None:
                    left = last_activity + args.idle_timeout - time.monotonic()
                    if left <= 0:
                        break
                    wait = min(wait, left)
                msg = consumer.poll(wait)
                if msg is None:
                    continue
                error = msg.error()
                if error is not None:
                    if error.code() != KafkaError._PARTITION_EOF:
                        errors(error)
                    continue
                last_activity = time.monotonic()
                line = _render(msg, args.json, models, err)
                if line is None:
                    continue
                try:
                    print(line, file=out, flush=True)
                except BrokenPipeError:  # `... | head`: the reader is gone
                    _silence_stdout()
                    return 0
                printed += 1
                if args.max is not None and printed >= args.max:
                    break
        finally:
            consumer.close()
    return 0


def _render(msg: Any, as_json: bool, models: set[str] | None, err: TextIO) -> str | None:
    """The line to print for a message, or None to skip it."""
    value = msg.value()
    if value is None:
        return None
    try:
        alert = orjson.loads(value)
    except orjson.JSONDecodeError:
        alert = None
    if not isinstance(alert, dict):
        where = f"{msg.topic()}[{msg.partition()}]@{msg.offset()}"
        print(f"{PROG}: skipping {where}: not a JSON alert", file=err, flush=True)
        return None
    if models is not None and alert.get("model") not in models:
        return None
    if not as_json:
        return format_line(alert)
    text: str = value.decode("utf-8", "replace")
    return text if "\n" not in text else orjson.dumps(alert).decode()


def _silence_stdout() -> None:
    """Point stdout at /dev/null so that the interpreter's final flush does not fail."""
    with contextlib.suppress(OSError, ValueError, AttributeError):
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())


def main(argv: list[str] | None = None) -> int:
    """Standalone entry point (`python -m stream_monitor.alerts_tail`) until the CLI has it."""
    parser = argparse.ArgumentParser(prog=PROG, description="Tail the alerts topic.")
    add_arguments(parser)
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
