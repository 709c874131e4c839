"""A model's first events: the key's model, reference, settings, plan and window, and, for a
model without a reference, the bootstrap reference taken from its first events.

Kept apart from the engine's batch loop: what a new model (or a new version of one) is
given is decided once, here, and the restore from the changelog gives it the same.
"""

from __future__ import annotations

import dataclasses
import logging

from stream_monitor.config.detector import DetectorSettings
from stream_monitor.decode.predictions import ModelEvents
from stream_monitor.engine.models import MonitoredModel, feature_notes
from stream_monitor.engine.versions import model_of, reference_for, settings_for
from stream_monitor.reference.compact import summarise_for
from stream_monitor.reference.prepared import PreparedReference
from stream_monitor.window.ring import WindowBlock

log = logging.getLogger(__name__)

_WARNED: set[tuple[str, str]] = set()  # (model, note) already logged by this process


def warn_once(model: str, note: str) -> None:
    """Log a note about a model once per process: a backtest sweep or a rebalance builds
    the same model again and would repeat it."""
    if (model, note) not in _WARNED:
        _WARNED.add((model, note))
        log.warning("model %r: %s", model, note)


def start_model(
    name: str,
    events: ModelEvents,
    references: dict[str, PreparedReference],
    settings: DetectorSettings,
    split_versions: bool,
    stream: str | None = None,
    segment: str | None = None,
) -> MonitoredModel:
    """The state of a key seen for the first time: a model, `model@version` (the stream),
    or a segment of a stream (`<stream>#country=FR`, which has the stream's reference and
    settings)."""
    stream = stream or name
    base = model_of(stream, events.versions[0] if events.versions else None, split_versions)
    first = events.features[0] if events.features else {}
    own = settings_for(settings, stream, base)
    reference = reference_of(references, name, stream, base, own)
    if segment is not None:  # its segment features are not judged (`for_segment`)
        first = {k: v for k, v in first.items() if k not in own.segment_by}
    if reference is not None:
        model = MonitoredModel.start(
            name, reference, reference.feature_names, own, base, stream, segment
        )
        model.window = model.new_window()
        model.notes.extend(feature_notes(reference, first))
    else:
        names = tuple(sorted(k for k, v in first.items() if not isinstance(v, str | bool)))
        if own.bootstrap_reference > 0:
            model = MonitoredModel.start(name, None, names, own, base, stream, segment)
            model.notes.append(
                f"no reference: the first {own.bootstrap_reference} events become the reference"
            )
        else:
            model = MonitoredModel.start(name, None, (), own, base, stream, segment)
            model.notes.append(
                "no reference: events are counted and performance/latency checked, but "
                "input and prediction drift are not (give --reference, or "
                "--bootstrap-reference N to take the first N events as reference)"
            )
            model.window = model.new_window()
    for note in model.notes:
        warn_once(name, note)
    return model


def reference_of(
    references: dict[str, PreparedReference],
    key: str,
    stream: str,
    model: str,
    settings: DetectorSettings,
) -> PreparedReference | None:
    """The reference a key is judged against: a segment's own (`<stream>#<segment>`) where
    given, else its stream's, else its model's; a segment's without its segment features."""
    if key == stream:
        return reference_for(references, stream, model)
    reference = references.get(key) or reference_for(references, stream, model)
    return None if reference is None else for_segment(reference, settings.segment_by)


def for_segment(reference: PreparedReference, features: list[str]) -> PreparedReference:
    """A segment's reference: the stream's without the segment features, constant in the
    segment's window by construction (its own drift would be no news)."""
    categorical = reference.categorical
    if categorical is None or not set(features) & set(categorical.feature_names):
        return reference
    return dataclasses.replace(reference, categorical=categorical.without(features))


def swap_reference(model: MonitoredModel, reference: PreparedReference) -> None:
    """Judge `model` against `reference` from its next event on: plan, thresholds and charts
    rebuilt (the charts start afresh), alert states and counts kept. The window is kept,
    its rows looked up in the new reference, when both are numeric with the same features;
    else (category codes or class labels of the old reference, other features) it starts
    empty. A bootstrap reference being taken is given up."""
    old = model.window
    keep = (
        old is not None
        and not old.categorical.shape[1]
        and not old.prediction_class.size
        and not old.classes
        and model.class_tally is None
        and reference.categorical is None
        and reference.classes is None
        and reference.feature_names == model.feature_names
    )
    model.feature_names = reference.feature_names
    model.use_reference(reference)
    model.bootstrap_rows.clear()
    model.bootstrap_predictions.clear()
    model.bootstrap_source = None
    if keep and old is not None:
        model.window = old.reranked(reference, model.plan.needs_bins)
    else:
        model.window = model.new_window()
        model.class_tally = None
    log.info(
        "model %r: reference %s from event %d on (window %s)",
        model.name,
        reference.reference_id,
        model.events_seen,
        "kept" if keep else "started afresh",
    )


def swap_changed(
    models: dict[str, MonitoredModel], references: dict[str, PreparedReference]
) -> list[str]:
    """Swap every key whose reference (its stream's, else its model's) is not the one it
    has; returns those keys. A key whose reference is gone keeps the one it has."""
    swapped = []
    for key, model in models.items():
        new = reference_of(references, key, model.stream, model.model_name, model.settings)
        old = model.reference
        if new is not None and (old is None or new.reference_id != old.reference_id):
            swap_reference(model, new)
            swapped.append(key)
    return swapped


def take_bootstrap(model: MonitoredModel, block: WindowBlock) -> int:
    """Take events into the bootstrap reference; returns how many were taken."""
    needed = model.settings.bootstrap_reference - sum(len(r) for r in model.bootstrap_rows)
    take = min(needed, len(block))
    model.bootstrap_rows.append(block.features[:take])
    model.bootstrap_predictions.append(block.prediction[:take])
    model.events_seen += take
    if take == needed:
        features, predictions = model.bootstrap_arrays()
        exact = PreparedReference.from_arrays(
            model.name,
            model.feature_names,
            features,
            predictions,
            model.settings.prediction_bins,
        )
        reference = summarise_for(exact, model.settings)  # compact if configured
        known = len(model.notes)
        model.use_reference(reference)
        for note in model.notes[known:]:  # what the new reference's charts say
            warn_once(model.name, note)
        model.bootstrap_source = (features, predictions)
        model.bootstrap_rows.clear()
        model.bootstrap_predictions.clear()
        model.notes.extend(reference.notes)
        model.window = model.new_window()
        log.info("model %r: reference taken from its first %d events", model.name, needed)
    return take
