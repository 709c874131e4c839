"""Segments: a model's windows per value of some features (`segment_by: [country]`), so a
drift in one market is not diluted by the others.

A stream (a model, or `model@version`) is split by the values of its segment features,
e.g. `country=FR`. A value gets its own window, key `<stream>#country=FR`, once it has
been seen `segment_min_events` times while the stream has fewer than `max_segments`
segments: the frequent values get one first. Every other event goes to
`<stream>#other`. The counts of the values not yet admitted travel with the `other`
window's changelog records, and the admitted values with their own windows', so a
restored member routes the next events as the one before it would have.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from stream_monitor.config.detector import DetectorSettings
from stream_monitor.decode.native import DecodedModel
from stream_monitor.decode.predictions import ModelEvents
from stream_monitor.engine.models import MonitoredModel
from stream_monitor.engine.versions import model_of, segment_key, settings_for

OTHER = "other"
MISSING = "(missing)"
COUNTED_PER_SEGMENT = 100  # values counted per allowed segment, the rarest dropped beyond


def _text(value: object) -> str:
    if value is None:
        return MISSING
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


@dataclass(slots=True)
class SegmentRouter:
    """Which segment each event of one stream goes to."""

    features: tuple[str, ...]
    limit: int
    min_events: int
    admitted: set[str] = field(default_factory=set)
    counts: dict[str, int] = field(default_factory=dict)  # values not admitted yet

    def segment_of(self, features: dict[str, object]) -> str:
        """The event's segment: its values' own, or `other`."""
        label = "&".join(f"{f}={_text(features.get(f))}" for f in self.features)
        if label in self.admitted:
            return label
        n = self.counts.get(label, 0) + 1
        if n >= self.min_events and len(self.admitted) < self.limit:
            self.counts.pop(label, None)
            self.admitted.add(label)
            return label
        self.counts[label] = n
        if len(self.counts) > 2 * COUNTED_PER_SEGMENT * self.limit:  # bounded, deterministic
            kept = sorted(self.counts.items(), key=lambda kv: (-kv[1], kv[0]))
            self.counts.clear()
            self.counts.update(kept[: COUNTED_PER_SEGMENT * self.limit])
        return OTHER


@dataclass(slots=True)
class Segments:
    """The routers of the segmented streams, and which stream and segment each key is."""

    routers: dict[str, SegmentRouter] = field(default_factory=dict)
    of_key: dict[str, tuple[str, str]] = field(default_factory=dict)  # key -> stream, segment
    unsegmented: set[str] = field(default_factory=set)  # streams known not to be split

    def split_batch(
        self, by_model: dict[str, DecodedModel], settings: DetectorSettings, split_versions: bool
    ) -> dict[str, DecodedModel]:
        """The batch's streams, those of models monitored per segment split by segment, in
        the order of their first events (a stream read natively is not: its features are
        not decoded, and a segmented model's streams never are)."""
        out: dict[str, DecodedModel] = {}
        split = False
        for name, read in by_model.items():
            router = (
                None if read.native else self._router(name, read.events, settings, split_versions)
            )
            if router is None:
                out[name] = read
            else:
                out.update(self.split(name, read, router))
                split = True
        return dict(sorted(out.items(), key=lambda kv: kv[1].events.index[0])) if split else out

    def segmented(
        self, stream: str, events: ModelEvents, settings: DetectorSettings, split_versions: bool
    ) -> bool:
        """Whether a stream met for the first time is monitored per segment."""
        return self._router(stream, events, settings, split_versions) is not None

    def _router(
        self, stream: str, events: ModelEvents, settings: DetectorSettings, split_versions: bool
    ) -> SegmentRouter | None:
        if stream in self.unsegmented or stream in self.of_key:
            return None  # a model's stream known unsplit, or a segment's own key
        version = events.versions[0] if events.versions else None
        own = settings_for(settings, stream, model_of(stream, version, split_versions))
        if not own.segment_by:
            self.unsegmented.add(stream)
            return None
        return self.router(stream, tuple(own.segment_by), own.max_segments, own.segment_min_events)

    def router(
        self, stream: str, features: tuple[str, ...], limit: int, least: int
    ) -> SegmentRouter:
        found = self.routers.get(stream)
        if found is None:
            found = self.routers[stream] = SegmentRouter(features, limit, least)
        return found

    def adopt(self, model: MonitoredModel) -> None:
        """A segment's window (new, or restored): its router knows it, and `other`'s
        counts are the router's."""
        assert model.segment is not None
        own = model.settings
        router = self.router(
            model.stream, tuple(own.segment_by), own.max_segments, own.segment_min_events
        )
        self.of_key[model.name] = (model.stream, model.segment)
        if model.segment == OTHER:
            if model.segment_counts is not None and model.segment_counts is not router.counts:
                router.counts.update(model.segment_counts)  # restored
            model.segment_counts = router.counts
        else:
            router.admitted.add(model.segment)

    def forget(self, stream: str) -> None:
        """A stream none of whose windows is held any more (moved, or an old version)."""
        self.routers.pop(stream, None)
        for key in [k for k, (s, _) in self.of_key.items() if s == stream]:
            del self.of_key[key]

    def split(
        self, stream: str, read: DecodedModel, router: SegmentRouter
    ) -> dict[str, DecodedModel]:
        """A stream's events of a batch as one `DecodedModel` per segment, in first-seen
        order (they are Python-decoded: the features are at hand)."""
        events = read.events
        picks: dict[str, list[int]] = {}
        for i, features in enumerate(events.features):
            picks.setdefault(router.segment_of(features), []).append(i)
        out = {}
        for segment, rows in picks.items():
            key = segment_key(stream, segment)
            self.of_key[key] = (stream, segment)
            out[key] = DecodedModel(_subset(events, key, rows), None, native=False)
        return out


def _subset(events: ModelEvents, name: str, rows: list[int]) -> ModelEvents:
    def take(values: list) -> list:  # type: ignore[type-arg]
        return [values[i] for i in rows] if values else []

    return ModelEvents(
        name,
        index=take(events.index),
        features=take(events.features),
        predictions=take(events.predictions),
        actuals=take(events.actuals),
        latencies=take(events.latencies),
        timestamps=take(events.timestamps),
        versions=take(events.versions),
        event_ids=take(events.event_ids),
    )
