"""The labels consumer without a broker: partitions follow the predictions', and the gate."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from stream_monitor.config.loading import load_settings
from stream_monitor.engine.core import Engine
from stream_monitor.service.label_feed import LabelFeed
from stream_monitor.sinks.prometheus import Metrics
from stream_monitor.sources.records import RecordBatch


@pytest.fixture
def feed() -> Iterator[LabelFeed]:
    settings = load_settings(
        {"bootstrap_servers": "127.0.0.1:1", "topic": "preds", "labels_topic": "labels"}
    )
    engine = Engine(settings.detector_settings(), {})
    made = LabelFeed.of(settings, engine, Metrics())
    assert made is not None and list(engine.observers) == [made.join]
    yield made
    made.close()


def _assigned(feed: LabelFeed) -> list[tuple[str, int]]:
    return sorted((tp.topic, tp.partition) for tp in feed.source._consumer.assignment())


def test_no_feed_without_a_labels_topic() -> None:
    settings = load_settings({})
    engine = Engine(settings.detector_settings(), {})
    assert LabelFeed.of(settings, engine, Metrics()) is None and not list(engine.observers)


def test_labels_partitions_follow_the_predictions_partitions(feed: LabelFeed) -> None:
    assert feed.restore([], [0, 2]) == []
    assert _assigned(feed) == [("labels", 0), ("labels", 2)]
    feed.restore([], [2])  # restored again (an aborted transaction): still once
    assert _assigned(feed) == [("labels", 0), ("labels", 2)]
    feed.release({("preds", 0), ("other-topic", 2)})
    assert _assigned(feed) == [("labels", 2)] and feed.source.assigned == {2}


def test_a_label_waits_for_the_predictions_before_it(feed: LabelFeed) -> None:
    source = feed.source
    feed.restore([], [0, 1])
    assert not source._open(0, 100.0)  # nothing consumed yet
    consumed = RecordBatch()
    consumed.append(b"m", b"{}", "preds", 0, 7, 150.0)
    consumed.append(b"m", b"{}", "preds", 1, 3, 90.0)
    feed.seen(consumed)
    assert source._open(0, 100.0) and source._open(0, 150.0) and not source._open(0, 151.0)
    assert not source._open(1, 100.0)
    ends = RecordBatch()
    ends.ends.add(("preds", 1))
    feed.seen(ends)  # partition 1 consumed to its end: every label may go
    assert source._open(1, 1e12)
    more = RecordBatch()
    more.append(b"m", b"{}", "preds", 1, 4, 95.0)
    feed.seen(more)  # a new prediction: not at the end any more
    assert not source._open(1, 100.0) and source._open(1, 95.0)
    feed.restore([], [1])  # reassigned: what was consumed before counts no more
    assert not source._open(1, 95.0)
