"""Alert delivery to HTTP webhooks (Slack or plain JSON), off the hot path.

The alerts topic stays the source of truth; webhooks are a convenience for people. The
service hands each batch's alerts to `WebhookDispatcher.offer` *after* the batch is committed;
`offer` only filters and appends to a bounded in-memory queue (it never blocks, never raises)
and one daemon thread per webhook delivers: POST with a timeout, retries with capped
exponential backoff on connection errors, timeouts, 5xx, 408 and 429 (honouring Retry-After),
no retry on other 4xx, and a token-bucket rate limit (Slack takes about one message a second).

**At least once, not exactly once.** A request that times out may still have been processed
by the receiver, and nothing lets us assume the receiver has an idempotency key, so a retry
can repeat a message. Every request carries the alert's id in the header
`X-Stream-Monitor-Alert-Id` (and JSON payloads carry `alert_id`, Slack messages show it) so
that receivers can deduplicate. Conversely, alerts still queued when the process stops (or
dropped because the queue was full) are not sent at all: they are counted (`dropped`) and
remain on the alerts topic, from which an operator or another consumer can replay them.

**Secrets.** A webhook URL is a credential (Slack's carries its token in the path): it is a
`SecretStr`, shown as `**********` by repr/str/model_dump, and never written to logs; a sink
is named in logs and statistics by `WebhookSettings.name` (default `webhook-<n>`).
"""

from __future__ import annotations

import email.utils
import logging
import math
import random
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime
from http.client import HTTPException
from typing import Any, Literal

import orjson

from stream_monitor._version import __version__
from stream_monitor.alerts.contract import Alert
from stream_monitor.config.webhooks import WebhookSettings
from stream_monitor.sinks.rate_limit import TokenBucket
from stream_monitor.sinks.webhook_messages import format_slack

log = logging.getLogger(__name__)


ALERT_ID_HEADER = "X-Stream-Monitor-Alert-Id"
ATTEMPT_HEADER = "X-Stream-Monitor-Attempt"
USER_AGENT = f"stream-monitor/{__version__}"
MAX_RESPONSE_BYTES = 64 * 1024  # read (and log a little of) at most this much of a reply
RETRY_STATUSES = frozenset({408, 429})  # plus every 5xx

Outcome = Literal["delivered", "failed", "retried", "dropped"]
OUTCOMES: tuple[Outcome, ...] = ("delivered", "failed", "retried", "dropped")


# -- payloads -----------------------------------------------------------------------------


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    """Never follow redirects: urllib would turn the POST into a GET without body, and a
    webhook that redirects elsewhere is misconfigured (the 3xx counts as a failure)."""

    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


def parse_retry_after(value: str | None) -> float | None:
    """Seconds to wait from a Retry-After header (delta-seconds or an HTTP date)."""
    if not value:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        seconds = (when - datetime.now(UTC)).total_seconds()
    return max(0.0, seconds) if math.isfinite(seconds) else None


class WebhookSink:
    """Delivers alerts to one webhook from its own daemon thread.

    Counters (plain int attributes, safe to read from any thread): `delivered`, `failed`
    (gave up: a non-retryable reply, retries exhausted, or abandoned at close), `retried`
    (attempts after the first) and `dropped` (never attempted: the queue was full, the sink
    was closed, or it was still queued when `close` ran out of time). `on_result(outcome)` is
    called once per counted event with the counter's name; it runs on the worker thread, or
    on the caller of `offer` for "dropped", so it must be quick (a Prometheus `inc()` is).
    """

    def __init__(
        self,
        settings: WebhookSettings,
        name: str | None = None,
        on_result: Callable[[str], None] | None = None,
    ) -> None:
        self.settings = settings
        self.name = name or settings.name or f"webhook-{settings.format}"
        self._on_result = on_result
        self._url = settings.url.get_secret_value()
        self._secret_parts = _secret_parts(self._url)
        self._opener = urllib.request.build_opener(_NoRedirect())
        self._bucket = TokenBucket(settings.rate_per_s, settings.burst)
        self._queue: deque[Alert] = deque()
        self._cond = threading.Condition()
        self._closing = False
        self._abort = threading.Event()  # set when close() runs out of time
        self.delivered = 0
        self.failed = 0
        self.retried = 0
        self.dropped = 0
        self._thread = threading.Thread(target=self._run, name=f"{self.name}-worker", daemon=True)
        self._thread.start()

    def __repr__(self) -> str:
        return f"WebhookSink(name={self.name!r}, format={self.settings.format!r})"

    @property
    def queued(self) -> int:
        return len(self._queue)

    def stats(self) -> dict[str, int]:
        return {
            "delivered": self.delivered,
            "failed": self.failed,
            "retried": self.retried,
            "dropped": self.dropped,
            "queued": self.queued,
        }

    # -- caller side ----------------------------------------------------------------------

    def offer(self, alerts: Iterable[Alert]) -> None:
        """Queue the alerts this webhook wants; never blocks, never raises."""
        try:
            wanted = [a for a in alerts if self.settings.matches(a)]
            if not wanted:
                return
            with self._cond:
                room = 0 if self._closing else self.settings.queue_size - len(self._queue)
                accepted = wanted[: max(room, 0)]
                self._queue.extend(accepted)
                if accepted:
                    self._cond.notify()
            lost = len(wanted) - len(accepted)
            if lost:
                self._count("dropped", lost)
                self._log_dropped(lost)
        except Exception as exc:  # a bug here must not reach the consume loop
            log.error("%s: could not queue alerts: %s", self.name, self._redact(repr(exc)))

    def close(self, timeout: float = 5.0) -> None:
        """Deliver what can be delivered within `timeout` seconds, then stop the worker.

        Returns after at most about `timeout` seconds even when the receiver hangs (the
        daemon thread then finishes its current request in the background).
        """
        deadline = time.monotonic() + max(0.0, timeout)
        self._begin_close()
        self._finish_close(deadline)

    def _begin_close(self) -> None:
        with self._cond:
            self._closing = True
            self._cond.notify_all()

    def _finish_close(self, deadline: float) -> None:
        self._thread.join(max(0.0, deadline - time.monotonic()))
        if not self._thread.is_alive():
            return
        self._abort.set()
        with self._cond:
            abandoned = len(self._queue)
            self._queue.clear()
        if abandoned:
            self._count("dropped", abandoned)
        log.warning(
            "%s: stopped before delivering everything; %d queued alerts not sent "
            "(they remain on the alerts topic)",
            self.name,
            abandoned,
        )

    # -- worker side ----------------------------------------------------------------------

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._queue and not self._closing:
                    self._cond.wait()
                if not self._queue or self._abort.is_set():
                    return
                alert = self._queue.popleft()
            try:
                self._deliver(alert)
            except Exception as exc:  # never let the worker die
                log.error(
                    "%s: alert %s not delivered: %s",
                    self.name,
                    alert.alert_id,
                    self._redact(repr(exc)),
                )
                self._count("failed")

    def _deliver(self, alert: Alert) -> None:
        s = self.settings
        body = orjson.dumps(format_slack(alert)) if s.format == "slack" else alert.to_json()
        attempt = 0
        while True:
            if not self._wait_for_token():
                self._give_up(alert, "stopped while waiting for the rate limit")
                return
            attempt += 1
            verdict, reason, retry_after = self._post(body, alert.alert_id, attempt)
            if verdict == "ok":
                self._count("delivered")
                log.debug("%s: alert %s delivered (attempt %d)", self.name, alert.alert_id, attempt)
                return
            if verdict == "fatal" or attempt > s.max_retries:
                why = reason if verdict == "fatal" else f"{reason}; gave up after {attempt} tries"
                self._give_up(alert, why)
                return
            if retry_after is not None:
                delay = min(retry_after, s.max_backoff_s)
            else:  # exponential with "equal jitter": in [d/2, d]
                full = min(s.max_backoff_s, s.backoff_s * 2 ** (attempt - 1))
                delay = full / 2 + random.uniform(0, full / 2)
            self._count("retried")
            log.info(
                "%s: alert %s attempt %d failed (%s); retrying in %.2f s",
                self.name,
                alert.alert_id,
                attempt,
                reason,
                delay,
            )
            if self._abort.wait(delay):
                self._give_up(alert, f"{reason}; stopped before retrying")
                return

    def _give_up(self, alert: Alert, reason: str) -> None:
        self._count("failed")
        log.warning(
            "%s: alert %s (%s %s of %s) not delivered: %s",
            self.name,
            alert.alert_id,
            alert.kind,
            alert.status,
            alert.model,
            reason,
        )

    def _wait_for_token(self) -> bool:
        while (wait := self._bucket.reserve()) > 0:
            if self._abort.wait(wait):
                return False
        return not self._abort.is_set()

    def _post(
        self, body: bytes, alert_id: str, attempt: int
    ) -> tuple[Literal["ok", "retry", "fatal"], str, float | None]:
        """One request: ("ok" | "retry" | "fatal", reason for logs, Retry-After seconds)."""
        request = urllib.request.Request(
            self._url,
            data=body,
            method="POST",
            headers={
                "Content-Type": "application/json",
                "User-Agent": USER_AGENT,
                ALERT_ID_HEADER: alert_id,
                ATTEMPT_HEADER: str(attempt),
            },
        )
        try:
            with self._opener.open(request, timeout=self.settings.timeout_s) as response:
                response.read(MAX_RESPONSE_BYTES)
                return "ok", f"HTTP {response.status}", None
        except urllib.error.HTTPError as exc:
            try:
                reply = exc.read(200).decode("utf-8", "replace").strip()
            except (OSError, HTTPException):
                reply = ""
            finally:
                exc.close()
            reason = f"HTTP {exc.code}" + (f": {self._redact(reply)}" if reply else "")
            if exc.code >= 500 or exc.code in RETRY_STATUSES:
                return "retry", reason, parse_retry_after(exc.headers.get("Retry-After"))
            return "fatal", reason, None
        except (urllib.error.URLError, OSError, HTTPException) as exc:
            # Connection refused or reset, DNS, TLS, timeouts (TimeoutError is an OSError),
            # a malformed reply: the next attempt may succeed.
            cause = exc.reason if isinstance(exc, urllib.error.URLError) else exc
            text = str(cause) or type(cause).__name__
            return "retry", self._redact(f"{type(cause).__name__}: {text}"), None
        except ValueError as exc:  # a URL urllib cannot use: retrying will not help
            return "fatal", self._redact(f"ValueError: {exc}"), None

    def _count(self, outcome: Outcome, n: int = 1) -> None:
        with self._cond:
            setattr(self, outcome, getattr(self, outcome) + n)
        if self._on_result is not None:
            for _ in range(n):
                try:
                    self._on_result(outcome)
                except Exception as exc:
                    log.error("%s: on_result callback failed: %r", self.name, exc)

    def _log_dropped(self, lost: int) -> None:
        # Once at the first drop, then each time the total passes a power of ten.
        total = self.dropped
        before = total - lost
        if before == 0 or len(str(total)) > len(str(before)):
            log.warning(
                "%s: %d alerts dropped so far (queue of %d full, or sink closed)",
                self.name,
                total,
                self.settings.queue_size,
            )

    def _redact(self, text: str) -> str:
        for part in self._secret_parts:
            text = text.replace(part, "**********")
        return text


def _secret_parts(url: str) -> list[str]:
    """The URL and the parts of it that may carry a token (path, query, user info)."""
    parts = urllib.parse.urlsplit(url)
    candidates = [url, parts.path, parts.query, parts.netloc if "@" in parts.netloc else ""]
    return sorted((p for p in candidates if len(p) > 1), key=len, reverse=True)


class WebhookDispatcher:
    """Fans alerts out to every configured webhook (one `WebhookSink` each).

    `on_result(name, outcome)` receives each sink's outcomes with the sink's name, for
    example to count them in Prometheus by webhook and outcome.
    """

    def __init__(
        self,
        settings: Sequence[WebhookSettings],
        on_result: Callable[[str, str], None] | None = None,
    ) -> None:
        self.sinks: list[WebhookSink] = []
        taken: set[str] = set()
        for i, s in enumerate(settings):
            name = s.name or f"webhook-{i}"
            if name in taken:
                name = f"{name}-{i}"
            taken.add(name)
            callback = None if on_result is None else _bind(on_result, name)
            self.sinks.append(WebhookSink(s, name=name, on_result=callback))

    def __repr__(self) -> str:
        return f"WebhookDispatcher({', '.join(s.name for s in self.sinks)})"

    def __len__(self) -> int:
        return len(self.sinks)

    def offer(self, alerts: Sequence[Alert]) -> None:
        """Hand alerts to every webhook; never blocks, never raises."""
        if not alerts:
            return
        for sink in self.sinks:
            sink.offer(alerts)

    def close(self, timeout: float = 5.0) -> None:
        """Drain every webhook within one shared `timeout`, then stop their workers."""
        deadline = time.monotonic() + max(0.0, timeout)
        for sink in self.sinks:
            sink._begin_close()
        for sink in self.sinks:
            sink._finish_close(deadline)

    def stats(self) -> dict[str, dict[str, int]]:
        return {sink.name: sink.stats() for sink in self.sinks}


def _bind(on_result: Callable[[str, str], None], name: str) -> Callable[[str], None]:
    def callback(outcome: str) -> None:
        on_result(name, outcome)

    return callback
