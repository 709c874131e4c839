"""What a webhook receives: an alert as a Slack message, or as its contract JSON."""

from __future__ import annotations

import math
from typing import Any

from stream_monitor.alerts.contract import Alert

_KIND_TITLES = {
    "input_drift": "Input drift",
    "prediction_drift": "Prediction drift",
    "performance": "Performance degradation",
    "latency": "Latency",
    "data_quality": "Data quality",
    "concept_drift": "Concept drift",
}
_MAX_LISTED_FEATURES = 10
_SLACK_HEADER_MAX = 150  # Slack's limit on a header block's text
_SLACK_TEXT_MAX = 2900  # under Slack's 3000 characters of a section's text


def format_json(alert: Alert) -> dict[str, Any]:
    """The alert's contract JSON (what the alerts topic carries), as a dict."""
    return alert.as_dict()


def _esc(text: str) -> str:
    """Escape Slack mrkdwn control characters: model and feature names are untrusted input
    (a name like `<!channel>` must not notify a whole channel)."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _num(value: float) -> str:
    return f"{value:.4g}" if math.isfinite(value) else str(value)


def _cap(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def format_slack(alert: Alert) -> dict[str, Any]:
    """A Slack message (`text` for notifications plus `blocks`) describing the alert.

    Kept whole: it is the message's layout, block by block, in the order Slack shows it.
    """
    title = _KIND_TITLES.get(alert.kind, alert.kind)
    firing = alert.status == "firing"
    version = alert.model_version or "unknown version"
    retrain = firing and alert.recommendation == "retrain"
    score = f"{alert.test} = {_num(alert.score)} (threshold {_num(alert.threshold)})"
    if firing:
        icon = ":rotating_light:" if alert.severity == "critical" else ":warning:"
        headline = f"{title} on {alert.model} {version} ({alert.severity})"
        summary = f"{icon} FIRING: {headline}: {score}"
    else:
        icon = ":white_check_mark:"
        headline = f"{title} resolved on {alert.model} {version}"
        summary = f"{icon} RESOLVED: {headline}: {score}, back within threshold"
    if retrain:
        summary += ". Consider retraining the model."

    blocks: list[dict[str, Any]] = [
        {
            "type": "header",
            "text": {
                "type": "plain_text",
                "text": _cap(_esc(f"{icon} {headline}"), _SLACK_HEADER_MAX),
                "emoji": True,
            },
        },
        {
            "type": "section",
            "fields": [
                {"type": "mrkdwn", "text": f"*Model*\n{_cap(_esc(alert.model), 200)}"},
                {"type": "mrkdwn", "text": f"*Version*\n{_cap(_esc(version), 200)}"},
                {"type": "mrkdwn", "text": f"*Drift type*\n{title}"},
                {"type": "mrkdwn", "text": f"*Status*\n{alert.status}"},
                {"type": "mrkdwn", "text": f"*Score*\n{_esc(score)}"},
                {"type": "mrkdwn", "text": f"*Severity*\n{alert.severity}"},
                {"type": "mrkdwn", "text": f"*Events seen*\n{alert.events_seen:,}"},
                {"type": "mrkdwn", "text": f"*Window*\n{alert.window.size:,} events"},
            ],
        },
    ]
    drifted = [f for f in alert.features if f.drifted] or alert.features
    if drifted:
        shown = ", ".join(
            f"{_esc(f.name)} ({f.test} {_num(f.score)})" for f in drifted[:_MAX_LISTED_FEATURES]
        )
        more = len(drifted) - _MAX_LISTED_FEATURES
        if more > 0:
            shown += f" and {more} more"
        label = "Drifted features" if any(f.drifted for f in drifted) else "Features"
        blocks.append(
            {
                "type": "section",
                "text": {"type": "mrkdwn", "text": _cap(f"*{label}*: {shown}", _SLACK_TEXT_MAX)},
            }
        )
    details = ", ".join(
        f"{_esc(k)}={_num(v) if isinstance(v, float) else _esc(str(v))}"
        for k, v in alert.details.items()
        if v is not None
    )
    if details:
        blocks.append(
            {
                "type": "section",
                "text": {"type": "mrkdwn", "text": _cap(f"*Details*: {details}", _SLACK_TEXT_MAX)},
            }
        )
    if retrain:
        blocks.append(
            {
                "type": "section",
                "text": {
                    "type": "mrkdwn",
                    "text": ":arrows_counterclockwise: *Consider retraining the model*: "
                    "it no longer behaves as on its reference data.",
                },
            }
        )
    elif not firing:
        blocks.append(
            {
                "type": "section",
                "text": {
                    "type": "mrkdwn",
                    "text": f":white_check_mark: *Resolved*: {title.lower()} is back within "
                    "its threshold.",
                },
            }
        )
    window = ""
    if alert.window.start or alert.window.end:
        window = f" · window {alert.window.start or '?'} to {alert.window.end or '?'}"
    blocks.append(
        {
            "type": "context",
            "elements": [
                {
                    "type": "mrkdwn",
                    "text": _cap(
                        f"alert_id {alert.alert_id} · detected {alert.detected_at or '-'}"
                        f"{window} · {_esc(alert.source.topic)}[{alert.source.partition}]"
                        f"@{alert.source.offset}",
                        _SLACK_TEXT_MAX,
                    ),
                }
            ],
        }
    )
    return {"text": _cap(_esc(summary), _SLACK_TEXT_MAX), "blocks": blocks}
