"""`stream-monitor reference publish MODEL FILE [--version V]`: a reference written to the
compacted references topic that every member of the group reads.

The file is read and checked as `--reference` reads it (JSONL, CSV or Parquet; the same
errors, with file, row and column), prepared once to be sure it is usable, then published
as chunks and a manifest (reference/published.py) by an idempotent producer; the topic is
created (one partition, compacted) when it does not exist.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from pathlib import Path

from stream_monitor.config.settings import Settings
from stream_monitor.decode.predictions import route_key
from stream_monitor.reference.loading import prepare_from_events, read_reference_events
from stream_monitor.reference.published import Manifest, records
from stream_monitor.service.changelog import CHANGELOG_CONFIG
from stream_monitor.service.kafka_clients import ensure_topics, new_admin, new_producer

log = logging.getLogger(__name__)

PUBLISH_TIMEOUT_S = 60.0


def publish_reference(
    settings: Settings, model: str, path: Path, version: str | None = None
) -> Manifest:
    """Publish the events of `path` as the reference of `model` (and `version`)."""
    topic = settings.references_topic
    if topic is None:
        raise ValueError("references_topic is not set (--references-topic)")
    events = read_reference_events(path, model)
    key = route_key(model, version)
    prepare_from_events(key, events, settings.prediction_bins, str(path))  # usable, or raises
    now = datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    manifest, out = records(model, version, events, path.name, now)
    ensure_topics(new_admin(settings), {topic: 1}, {topic: CHANGELOG_CONFIG})
    producer = new_producer(settings)
    failures: list[str] = []

    def delivered(err: object, _msg: object) -> None:
        if err is not None:
            failures.append(str(err))

    for record_key, value in out[:-1]:  # the chunks, acknowledged before the manifest
        producer.produce(topic, value, record_key, partition=0, on_delivery=delivered)
        producer.poll(0)
    if producer.flush(PUBLISH_TIMEOUT_S) or failures:
        raise RuntimeError(f"publishing to {topic} failed: {failures or 'timed out'}")
    record_key, value = out[-1]
    producer.produce(topic, value, record_key, partition=0, on_delivery=delivered)
    if producer.flush(PUBLISH_TIMEOUT_S) or failures:
        raise RuntimeError(f"publishing to {topic} failed: {failures or 'timed out'}")
    return manifest
