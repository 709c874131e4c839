"""Where a member's references come from while it runs: the local files (`--reference`,
read again on SIGHUP) and, with `--references-topic`, the compacted topic every member of
the group reads (`stream-monitor reference publish`). A reference of the topic wins over a
file for the same key.

The engine swaps a model's reference between two batches (`Engine.replace_references`),
never inside one; before restoring the state of newly assigned partitions a member reads
the topic to its end, so it judges the restored windows against the newest reference any
member may have used (docs/references.md says why this keeps exactly-once).
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

from confluent_kafka import Consumer, KafkaException, TopicPartition

from stream_monitor.config.settings import Settings
from stream_monitor.engine.versions import settings_for
from stream_monitor.reference.compact import compact_references, summarise_for
from stream_monitor.reference.loading import load_references, prepare_from_events
from stream_monitor.reference.prepared import InvalidReference, PreparedReference
from stream_monitor.reference.published import Assembler, BadRecord, events_of
from stream_monitor.service.kafka_clients import CONSUMER_FETCH, client_config
from stream_monitor.sources.kafka import FatalKafkaError

log = logging.getLogger(__name__)

CATCH_UP_TIMEOUT_S = 60.0


class ReferenceSource:
    """The references a member judges by: files and the references topic, merged."""

    def __init__(self, settings: Settings, files: dict[str, PreparedReference]) -> None:
        self.settings = settings
        self.files = dict(files)
        self.published: dict[str, PreparedReference] = {}
        self.assembler = Assembler()
        self.reload_requested = False  # set by SIGHUP: read the files again
        self._changed = False
        self._next = 0  # the offset after the last record read
        self._consumer: Consumer | None = None
        if settings.references_topic is not None:
            self._consumer = Consumer(
                {
                    **CONSUMER_FETCH,
                    **client_config(settings),
                    "group.id": f"{settings.group_id}-references",  # never commits
                    "enable.auto.commit": False,
                    "enable.partition.eof": True,
                    "auto.offset.reset": "earliest",
                }
            )
            self._consumer.assign([TopicPartition(settings.references_topic, 0, 0)])

    def merged(self) -> dict[str, PreparedReference]:
        return {**self.files, **self.published}

    def changes(self) -> dict[str, PreparedReference] | None:
        """The merged references when they changed since the last call (files reloaded on
        SIGHUP, or new manifests read from the topic), else None; never blocks."""
        if self.reload_requested:
            self.reload_requested = False
            self._reload_files()
        if self._consumer is not None:
            self._read(0.0, until_end=False)
        changed, self._changed = self._changed, False
        return self.merged() if changed else None

    def catch_up(self) -> dict[str, PreparedReference] | None:
        """Read the topic to its end (at start-up and before a restore); as `changes`."""
        if self._consumer is not None:
            self._read(CATCH_UP_TIMEOUT_S, until_end=True)
        return self.changes()

    def close(self) -> None:
        if self._consumer is not None:
            self._consumer.close()
            self._consumer = None

    def _reload_files(self) -> None:
        path = self.settings.reference
        if path is None:
            return
        try:
            loaded = load_references(Path(path), self.settings.prediction_bins)
            files = compact_references(loaded, self.settings)  # as at start-up
        except InvalidReference as exc:  # keep judging by the references in use
            log.error("SIGHUP: references not reloaded, %s", exc)
            return
        ids = {k: r.reference_id for k, r in self.files.items()}
        if ids != {k: r.reference_id for k, r in files.items()}:
            self.files = files
            self._changed = True
        log.info("SIGHUP: references reloaded from %s (%d models)", path, len(files))

    def _read(self, timeout: float, until_end: bool) -> None:
        """Take the topic's records; with `until_end`, up to its end as it is now (or until
        `timeout`): its high watermark, asked first (an absent topic has nothing)."""
        topic = self.settings.references_topic
        assert self._consumer is not None and topic is not None
        end = 0
        if until_end:
            try:
                _low, end = self._consumer.get_watermark_offsets(
                    TopicPartition(topic, 0), timeout=10
                )
            except KafkaException as exc:
                log.info("references topic %s not read: %s", topic, exc)
                return
        deadline = time.monotonic() + timeout
        touched: set[str] = set()
        while True:
            messages = self._consumer.consume(1000, 0.2 if until_end else 0)
            for msg in messages:
                err = msg.error()
                if err is not None:
                    if err.fatal():
                        raise FatalKafkaError(f"references topic: {err.str()}")
                    continue  # the end of the partition, or not created yet
                offset = msg.offset()
                self._next = self._next if offset is None else offset + 1
                try:
                    key = self.assembler.add(msg.key(), msg.value())
                except BadRecord as exc:
                    log.warning("references topic offset %d: %s (skipped)", msg.offset(), exc)
                    continue
                if key is not None:
                    touched.add(key)
            if not until_end or self._next >= end or time.monotonic() > deadline:
                break
        for key in touched:
            self._prepare(key)

    def _prepare(self, key: str) -> None:
        """The newest complete reference of `key` as a prepared one (a bad one is named and
        the one in use kept)."""
        manifest = self.assembler.manifests.get(key)
        if manifest is None:
            if self.published.pop(key, None) is not None:
                self._changed = True
            return
        current = self.published.get(key)
        if current is not None and current.reference_id == manifest.reference_id:
            return
        text = self.assembler.text(manifest)
        if text is None:
            log.error("reference %s %s: chunks missing or altered", key, manifest.reference_id)
            return
        source = f"{self.settings.references_topic}:{key}"
        try:
            prepared = prepare_from_events(
                key, events_of(text), self.settings.prediction_bins, source
            )
        except InvalidReference as exc:
            log.error("reference %s from the topic is not usable: %s", key, exc)
            return
        own = settings_for(self.settings, key, manifest.model)
        self.published[key] = summarise_for(prepared, own)  # compact if configured
        self._changed = True
        log.info(
            "reference %s: %s (%d events) from %s",
            key,
            manifest.reference_id,
            manifest.events,
            self.settings.references_topic,
        )
