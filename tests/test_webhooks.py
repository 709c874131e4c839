"""Webhook delivery against a real local HTTP server that fails, hangs, throttles and recovers."""

from __future__ import annotations

import itertools
import logging
import socket
import threading
import time
from collections import Counter, deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import orjson
import pytest
from pydantic import ValidationError

from stream_monitor.alerts.contract import (
    Alert,
    FeatureResult,
    SourcePosition,
    WindowInfo,
    alert_id,
)
from stream_monitor.config.webhooks import WebhookSettings
from stream_monitor.sinks.webhook_messages import format_json, format_slack
from stream_monitor.sinks.webhooks import (
    ALERT_ID_HEADER,
    WebhookDispatcher,
    WebhookSink,
    parse_retry_after,
)

SECRET = "T0000SECRET/B0000SECRET/xoxbSECRETTOKEN"
WAIT = 10.0  # deadline of every condition wait; the conditions hold in well under a second


def make_alert(
    model: str = "fraud-scorer",
    kind: str = "input_drift",
    status: str = "firing",
    severity: str = "warning",
    events_seen: int = 8200,
    score: float = 0.158,
    threshold: float = 0.1,
) -> Alert:
    firing = status == "firing"
    return Alert(
        alert_id=alert_id(model, kind, status, events_seen),
        model=model,
        model_version="v1",
        kind=kind,  # type: ignore[arg-type]
        status=status,  # type: ignore[arg-type]
        severity=severity,  # type: ignore[arg-type]
        test="ks",
        score=score,
        threshold=threshold,
        features=[
            FeatureResult(name="f00", test="ks", score=score, p_value=1e-11, drifted=firing),
            FeatureResult(name="f01", test="ks", score=0.03, p_value=0.4, drifted=False),
        ],
        events_seen=events_seen,
        window=WindowInfo(size=1000, start="2026-11-26T10:00:00.000Z", end="2026-11-26T10:05:00Z"),
        source=SourcePosition(topic="predictions", partition=0, offset=24601),
        detected_at="2026-11-26T10:05:00.000Z",
        recommendation="retrain" if firing and kind != "latency" else None,
        details={"rule": "max"},
    )


def many_alerts(n: int) -> list[Alert]:
    return [make_alert(events_seen=1000 + i) for i in range(n)]


# -- the receiving end ----------------------------------------------------------------------


@dataclass
class Request:
    at: float  # time.monotonic() when the request reached the handler
    path: str
    headers: dict[str, str]
    body: bytes


class Receiver:
    """A ThreadingHTTPServer on 127.0.0.1 whose replies the test scripts.

    Each request takes the next reply of `script`, or `default` when the script is empty:
    "ok" (200), "500", "400", "429:<Retry-After>" or "hang" (block until `release` is set,
    then reply 200; the client has given up long before).
    """

    def __init__(self) -> None:
        self.requests: list[Request] = []
        self.script: deque[str] = deque()
        self.default = "ok"
        self.release = threading.Event()
        self.cond = threading.Condition()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                at = time.monotonic()
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                with receiver.cond:
                    reply = receiver.script.popleft() if receiver.script else receiver.default
                    receiver.requests.append(Request(at, self.path, dict(self.headers), body))
                    receiver.cond.notify_all()
                if reply == "hang":
                    receiver.release.wait()
                    reply = "ok"
                try:
                    if reply == "ok":
                        self._send(200, b"ok")
                    elif reply.startswith("429:"):
                        self._send(429, b"rate_limited", {"Retry-After": reply[4:]})
                    else:
                        self._send(int(reply), b"no_service")
                except OSError:  # the client is gone (it timed out)
                    pass

            def _send(self, code: int, body: bytes, headers: dict[str, str] | None = None) -> None:
                self.send_response(code)
                for k, v in (headers or {}).items():
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        # A short poll interval only makes shutdown() (at teardown) return sooner.
        self._thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()

    def url(self, path: str = f"/services/{SECRET}") -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def wait_requests(self, n: int, timeout: float = WAIT) -> list[Request]:
        with self.cond:
            if not self.cond.wait_for(lambda: len(self.requests) >= n, timeout):
                raise AssertionError(f"{len(self.requests)} requests after {timeout} s, not {n}")
            return list(self.requests)

    def bodies(self) -> list[dict[str, Any]]:
        with self.cond:
            return [orjson.loads(r.body) for r in self.requests]

    def stop(self) -> None:
        self.release.set()
        self.server.shutdown()
        self.server.server_close()


class Outcomes:
    """Collects on_result outcomes and lets the test wait for a count of one of them."""

    def __init__(self) -> None:
        self.counts: Counter[str] = Counter()
        self.cond = threading.Condition()

    def __call__(self, outcome: str) -> None:
        with self.cond:
            self.counts[outcome] += 1
            self.cond.notify_all()

    def wait(self, outcome: str, n: int, timeout: float = WAIT) -> None:
        with self.cond:
            if not self.cond.wait_for(lambda: self.counts[outcome] >= n, timeout):
                raise AssertionError(f"waited for {n} {outcome}, have {dict(self.counts)}")


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.stop()


@pytest.fixture
def make_sink() -> Iterator[Callable[..., tuple[WebhookSink, Outcomes]]]:
    sinks: list[WebhookSink] = []

    def make(url: str, **options: Any) -> tuple[WebhookSink, Outcomes]:
        fast: dict[str, Any] = {"backoff_s": 0.01, "rate_per_s": 1000.0, "timeout_s": 2.0}
        settings = WebhookSettings(url=url, **{**fast, **options})
        outcomes = Outcomes()
        sink = WebhookSink(settings, on_result=outcomes)
        sinks.append(sink)
        return sink, outcomes

    yield make
    for sink in sinks:
        sink.close(0.2)


# -- settings -------------------------------------------------------------------------------


def test_settings_defaults_and_secret_url() -> None:
    url = f"https://hooks.slack.com/services/{SECRET}"
    s = WebhookSettings(url=url, format="slack")
    assert (s.kinds, s.min_severity, s.statuses) == (None, "warning", ["firing", "resolved"])
    assert (s.timeout_s, s.max_retries, s.backoff_s, s.rate_per_s, s.queue_size) == (
        5,
        5,
        0.5,
        1.0,
        1000,
    )
    for shown in (repr(s), str(s), str(s.model_dump()), s.model_dump_json()):
        assert "SECRET" not in shown and "hooks.slack.com" not in shown
    assert s.url.get_secret_value() == url


@pytest.mark.parametrize(
    "options, expected",
    [
        ({"url": f"ftp://example.com/{SECRET}"}, "http:// or https://"),
        ({"url": f"/{SECRET}"}, "http:// or https://"),
        ({"url": "https://h/x", "kinds": ["input_drfit"]}, "unknown kinds"),
        ({"url": "https://h/x", "kinds": []}, "leave kinds unset"),
        ({"url": "https://h/x", "format": "teams"}, "format"),
        ({"url": "https://h/x", "retries": 3}, "Extra inputs are not permitted"),
        ({"url": "https://h/x", "rate_per_s": 0}, "greater than 0"),
    ],
)
def test_settings_rejected(options: dict[str, Any], expected: str) -> None:
    with pytest.raises(ValidationError) as info:
        WebhookSettings(**options)
    assert expected in str(info.value)
    assert "SECRET" not in str(info.value)


def test_filter_by_kind_severity_status() -> None:
    s = WebhookSettings(
        url="https://h/x", kinds=["input_drift"], min_severity="critical", statuses=["firing"]
    )
    assert s.matches(make_alert(severity="critical"))
    assert not s.matches(make_alert(severity="warning"))
    assert not s.matches(make_alert(severity="critical", kind="latency"))
    assert not s.matches(make_alert(severity="critical", status="resolved"))
    everything = WebhookSettings(url="https://h/x")
    assert everything.matches(make_alert(kind="latency", status="resolved"))


def test_parse_retry_after() -> None:
    assert parse_retry_after("3") == 3
    assert parse_retry_after(" 0 ") == 0
    assert parse_retry_after("-5") == 0
    assert parse_retry_after(None) is None
    assert parse_retry_after("soon") is None
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT") == 0  # in the past
    later = parse_retry_after(
        time.strftime("%a, %d %b %Y %H:%M:%S GMT", time.gmtime(time.time() + 120))
    )
    assert later is not None and 100 < later <= 120


# -- payloads -------------------------------------------------------------------------------


def test_slack_payload_firing() -> None:
    msg = format_slack(make_alert(severity="critical", score=0.25))
    orjson.dumps(msg)  # serialisable
    assert set(msg) == {"text", "blocks"}
    text = msg["text"]
    for part in ("FIRING", "Input drift", "fraud-scorer", "v1", "critical", "ks = 0.25"):
        assert part in text
    assert "threshold 0.1" in text and "Consider retraining" in text
    assert all(isinstance(b, dict) and "type" in b for b in msg["blocks"])
    assert msg["blocks"][0]["type"] == "header"
    assert len(msg["blocks"][0]["text"]["text"]) <= 150
    fields = " ".join(f["text"] for f in msg["blocks"][1]["fields"])
    for part in ("*Model*\nfraud-scorer", "*Version*\nv1", "*Severity*\ncritical"):
        assert part in fields
    assert "*Events seen*\n8,200" in fields and "threshold 0.1" in fields
    everything = orjson.dumps(msg).decode()
    assert "Drifted features*: f00 (ks 0.25)" in everything
    assert "f01" not in everything  # only the drifted ones
    assert "Consider retraining the model" in everything
    assert make_alert().alert_id in everything


def test_slack_payload_resolved_and_escaped() -> None:
    alert = make_alert(model="<!channel> & co", status="resolved", score=0.05)
    msg = format_slack(alert)
    everything = orjson.dumps(msg).decode()
    assert "RESOLVED" in msg["text"] and "back within threshold" in msg["text"]
    assert "retrain" not in everything.lower()
    assert "<!channel>" not in everything
    assert "&lt;!channel&gt; &amp; co" in everything


def test_json_payload_is_the_contract() -> None:
    alert = make_alert()
    assert format_json(alert) == orjson.loads(alert.to_json())


# -- delivery -------------------------------------------------------------------------------


def test_delivers_json_with_alert_id_header(receiver: Receiver, make_sink: Any) -> None:
    sink, outcomes = make_sink(receiver.url())
    alert = make_alert()
    sink.offer([alert])
    outcomes.wait("delivered", 1)
    (req,) = receiver.wait_requests(1)
    assert req.path == f"/services/{SECRET}"
    assert req.headers["Content-Type"] == "application/json"
    assert req.headers[ALERT_ID_HEADER] == alert.alert_id
    assert req.body == alert.to_json()
    assert (sink.delivered, sink.failed, sink.retried, sink.dropped) == (1, 0, 0, 0)


def test_delivers_slack_message(receiver: Receiver, make_sink: Any) -> None:
    sink, outcomes = make_sink(receiver.url(), format="slack")
    sink.offer([make_alert()])
    outcomes.wait("delivered", 1)
    (body,) = receiver.bodies()
    assert body == format_slack(make_alert())


def test_retries_on_500_then_succeeds(receiver: Receiver, make_sink: Any) -> None:
    receiver.script.extend(["500", "500"])
    sink, outcomes = make_sink(receiver.url())
    alert = make_alert()
    sink.offer([alert])
    outcomes.wait("delivered", 1)
    requests = receiver.wait_requests(3)
    assert len(requests) == 3
    assert {r.headers[ALERT_ID_HEADER] for r in requests} == {alert.alert_id}
    assert [r.headers["X-Stream-Monitor-Attempt"] for r in requests] == ["1", "2", "3"]
    assert (sink.delivered, sink.failed, sink.retried) == (1, 0, 2)
    assert outcomes.counts == {"retried": 2, "delivered": 1}


def test_gives_up_after_max_retries_then_recovers(receiver: Receiver, make_sink: Any) -> None:
    receiver.default = "500"
    sink, outcomes = make_sink(receiver.url(), max_retries=2)
    sink.offer([make_alert()])
    outcomes.wait("failed", 1)
    assert len(receiver.wait_requests(3)) == 3  # the first attempt and two retries
    assert (sink.delivered, sink.failed, sink.retried) == (0, 1, 2)

    receiver.default = "ok"  # the receiver recovers: the next alert goes through
    sink.offer([make_alert(events_seen=9000)])
    outcomes.wait("delivered", 1)
    assert len(receiver.requests) == 4
    assert (sink.delivered, sink.failed, sink.retried) == (1, 1, 2)


def test_no_retry_on_4xx(receiver: Receiver, make_sink: Any) -> None:
    receiver.script.append("404")
    sink, outcomes = make_sink(receiver.url())
    sink.offer([make_alert(), make_alert(events_seen=9000)])
    outcomes.wait("delivered", 1)  # the second alert: the 404 was not retried
    assert len(receiver.requests) == 2
    assert (sink.delivered, sink.failed, sink.retried) == (1, 1, 0)


def test_connection_refused_is_retried(make_sink: Any) -> None:
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    sink, outcomes = make_sink(f"http://127.0.0.1:{port}/x", max_retries=3)
    sink.offer([make_alert()])
    outcomes.wait("failed", 1)
    assert (sink.delivered, sink.failed, sink.retried) == (0, 1, 3)


def test_429_honours_retry_after(receiver: Receiver, make_sink: Any) -> None:
    receiver.script.append("429:1")
    sink, outcomes = make_sink(receiver.url(), backoff_s=0.01)
    sink.offer([make_alert()])
    outcomes.wait("delivered", 1)
    first, second = receiver.wait_requests(2)
    assert second.at - first.at >= 0.95  # Retry-After: 1, not the 10 ms backoff
    assert (sink.delivered, sink.retried) == (1, 1)


def test_retry_after_is_capped(receiver: Receiver, make_sink: Any) -> None:
    receiver.script.append("429:3600")
    sink, outcomes = make_sink(receiver.url(), max_backoff_s=0.05)
    sink.offer([make_alert()])
    outcomes.wait("delivered", 1)  # within WAIT seconds, not an hour
    assert sink.retried == 1


def test_hanging_server_never_blocks_offer(receiver: Receiver, make_sink: Any) -> None:
    receiver.default = "hang"
    sink, outcomes = make_sink(receiver.url(), timeout_s=0.3, max_retries=1, queue_size=100)
    alerts = many_alerts(1000)
    started = time.monotonic()
    sink.offer(alerts)
    assert time.monotonic() - started < 0.5
    # The queue holds 100 (the worker may already have taken the first one out).
    assert 899 <= sink.dropped <= 900
    assert outcomes.counts["dropped"] == sink.dropped

    # The worker times out and retries the same alert.
    outcomes.wait("retried", 1)
    first, second = receiver.wait_requests(2)
    assert first.headers[ALERT_ID_HEADER] == second.headers[ALERT_ID_HEADER]
    assert second.at - first.at >= 0.25  # the client timeout, not an immediate retry
    outcomes.wait("failed", 1)  # gave up after max_retries timeouts

    # offer stays instant while the worker is stuck; close gives up on time.
    started = time.monotonic()
    sink.offer(many_alerts(1000))
    sink.close(timeout=0.5)
    assert time.monotonic() - started < 2.0
    assert sink.delivered == 0
    assert sink.dropped + sink.failed + sink.delivered <= 2000
    assert sink.queued == 0


def test_rate_limit_spaces_deliveries(receiver: Receiver, make_sink: Any) -> None:
    rate, burst, n = 10.0, 2, 7
    sink, outcomes = make_sink(receiver.url(), rate_per_s=rate, burst=burst)
    sink.offer(many_alerts(n))
    outcomes.wait("delivered", n)
    arrivals = [r.at for r in receiver.wait_requests(n)]
    gaps = [b - a for a, b in itertools.pairwise(arrivals)]
    assert all(g >= 0.6 / rate for g in gaps[burst - 1 :]), gaps
    assert arrivals[-1] - arrivals[0] >= 0.9 * (n - burst) / rate


def test_filters_before_queueing(receiver: Receiver, make_sink: Any) -> None:
    sink, _ = make_sink(receiver.url(), kinds=["input_drift", "latency"], min_severity="critical")
    wanted = [
        make_alert(kind="input_drift", severity="critical"),
        make_alert(kind="latency", severity="critical", status="resolved"),
    ]
    unwanted = [
        make_alert(kind="input_drift", severity="warning"),
        make_alert(kind="prediction_drift", severity="critical"),
    ]
    sink.offer(unwanted + wanted)
    sink.close(timeout=WAIT)  # drains the queue
    assert [b["alert_id"] for b in receiver.bodies()] == [a.alert_id for a in wanted]
    assert (sink.delivered, sink.dropped) == (2, 0)


def test_close_drains_then_offer_is_dropped(receiver: Receiver, make_sink: Any) -> None:
    sink, _ = make_sink(receiver.url())
    sink.offer(many_alerts(20))
    sink.close(timeout=WAIT)
    assert sink.delivered == 20 and len(receiver.requests) == 20
    assert not sink._thread.is_alive()
    sink.offer([make_alert()])  # after close: counted, not raised
    assert sink.dropped == 1


def test_offer_never_raises(receiver: Receiver, make_sink: Any) -> None:
    sink, _ = make_sink(receiver.url())
    sink.offer([object()])  # type: ignore[list-item]
    sink.offer(None)  # type: ignore[arg-type]
    assert sink.stats()["queued"] == 0


def test_url_never_in_logs_or_repr(
    receiver: Receiver, make_sink: Any, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="stream_monitor")
    receiver.script.extend(["500", "400"])
    sink, outcomes = make_sink(receiver.url(), max_retries=1, queue_size=1)
    sink.offer([make_alert(), make_alert(events_seen=1), make_alert(events_seen=2)])
    outcomes.wait("failed", 1)
    sink.offer([make_alert(events_seen=3)])
    outcomes.wait("delivered", 1)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{s.getsockname()[1]}/services/{SECRET}?token=SECRET"
    other, other_outcomes = make_sink(dead, max_retries=1)
    other.offer([make_alert()])
    other_outcomes.wait("failed", 1)
    other.close(0.5)

    assert "retrying" in caplog.text and "not delivered" in caplog.text
    assert "dropped" in caplog.text
    shown = [caplog.text, repr(sink), str(sink), str(sink.stats()), repr(sink.settings)]
    for text in shown:
        assert "SECRET" not in text
        assert f"127.0.0.1:{receiver.port}" not in text


def test_dispatcher_fans_out(receiver: Receiver) -> None:
    seen: list[tuple[str, str]] = []
    lock = threading.Lock()

    def on_result(name: str, outcome: str) -> None:
        with lock:
            seen.append((name, outcome))

    dispatcher = WebhookDispatcher(
        [
            WebhookSettings(url=receiver.url("/slack"), format="slack", name="ops", rate_per_s=100),
            WebhookSettings(url=receiver.url("/json"), kinds=["latency"], rate_per_s=100),
        ],
        on_result=on_result,
    )
    assert "/slack" not in repr(dispatcher) and len(dispatcher) == 2
    dispatcher.offer([make_alert(), make_alert(kind="latency")])
    dispatcher.offer([])
    dispatcher.close(timeout=WAIT)
    paths = Counter(r.path for r in receiver.requests)
    assert paths == {"/slack": 2, "/json": 1}
    stats = dispatcher.stats()
    assert set(stats) == {"ops", "webhook-1"}
    assert stats["ops"]["delivered"] == 2 and stats["webhook-1"]["delivered"] == 1
    assert sorted(seen) == [("ops", "delivered")] * 2 + [("webhook-1", "delivered")]
