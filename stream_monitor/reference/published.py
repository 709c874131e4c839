"""References as records of a compacted Kafka topic: the format, with no Kafka here.

A reference is published as its events in a canonical JSONL text (keys sorted, one event
per line), cut into chunks under the 1 MB a broker takes by default (a 10 000 x 20
reference is a few MB), then one manifest naming it:

- a chunk: key `chunk:<reference id>:<i>`, value the i-th slice of the text (each event's
  features and prediction: what a reference is prepared from);
- the manifest: key `reference:<model>` or `reference:<model>@<version>`, value a JSON
  object: `model`, `version`, `reference_id`, `chunks`, `bytes`, `events`, `source`,
  `published_at`.

The reference id is the content hash (BLAKE2b, 128 bits, hex) of the canonical text, so a
file and its published copy have the same id, whatever their format, and chunks never
change under a key: compaction keeps them all, and a manifest can name an older reference
again. The topic has one partition, so a manifest always follows its chunks.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from hashlib import blake2b

import orjson

from stream_monitor.decode.predictions import route_key

CHUNK_BYTES = 512 * 1024
MANIFEST_PREFIX = b"reference:"
CHUNK_PREFIX = b"chunk:"


def canonical_text(events: Iterable[dict[str, object]]) -> bytes:
    """The events as one canonical JSONL text: what a reference is prepared from (features
    and prediction; a missing feature left out, an integer as its float), keys sorted. The
    id is its hash, so the same data read from JSONL, CSV or Parquet has one id."""
    return b"".join(
        orjson.dumps(_essential(e), option=orjson.OPT_SORT_KEYS) + b"\n" for e in events
    )


def _essential(event: dict[str, object]) -> dict[str, object]:
    features = event.get("features")
    given = features if isinstance(features, dict) else {}
    return {
        "features": {k: _number(v) for k, v in given.items() if v is not None},
        "prediction": _number(event.get("prediction")),
    }


def _number(value: object) -> object:
    """An integer as its float (JSON 1 and CSV 1.0 are one value); the rest as it is."""
    return float(value) if type(value) is int else value


def reference_id(text: bytes) -> str:
    """The content hash that names a reference (alerts and the changelog carry it)."""
    return blake2b(text, digest_size=16).hexdigest()


@dataclass(frozen=True, slots=True)
class Manifest:
    """What a published reference is: the model (and version) it is for, its id and size."""

    model: str
    version: str | None
    reference_id: str
    chunks: int
    size: int  # bytes of the text
    events: int
    source: str = ""
    published_at: str = ""

    @property
    def key(self) -> str:
        """The key of the windows it judges: the model, or `model@version`."""
        return route_key(self.model, self.version)

    def to_json(self) -> bytes:
        return orjson.dumps(
            {
                "model": self.model,
                "version": self.version,
                "reference_id": self.reference_id,
                "chunks": self.chunks,
                "bytes": self.size,
                "events": self.events,
                "source": self.source,
                "published_at": self.published_at,
            }
        )


def records(
    model: str,
    version: str | None,
    events: list[dict[str, object]],
    source: str = "",
    published_at: str = "",
) -> tuple[Manifest, list[tuple[bytes, bytes]]]:
    """The (key, value) records that publish `events` as the reference of `model` (and
    `version`): the chunks, then the manifest last."""
    text = canonical_text(events)
    ident = reference_id(text)
    n = max(1, math.ceil(len(text) / CHUNK_BYTES))
    out = [
        (CHUNK_PREFIX + f"{ident}:{i}".encode(), text[i * CHUNK_BYTES : (i + 1) * CHUNK_BYTES])
        for i in range(n)
    ]
    manifest = Manifest(model, version, ident, n, len(text), len(events), source, published_at)
    out.append((MANIFEST_PREFIX + manifest.key.encode(), manifest.to_json()))
    return manifest, out


class BadRecord(ValueError):
    """A record of the references topic that is not one of ours (named, then skipped)."""


@dataclass(slots=True)
class Assembler:
    """Reads the topic's records in order; knows the newest complete reference per key."""

    chunks: dict[tuple[str, int], bytes] = field(default_factory=dict)
    manifests: dict[str, Manifest] = field(default_factory=dict)  # newest per key
    texts: dict[str, bytes] = field(default_factory=dict)  # reference id -> checked text

    def add(self, key: bytes | None, value: bytes | None) -> str | None:
        """Take one record; returns the key whose manifest it was, if any (raises BadRecord
        for a record that is neither a chunk nor a manifest)."""
        if key is None:
            raise BadRecord("a record without a key")
        if key.startswith(CHUNK_PREFIX):
            ident, _, index = key[len(CHUNK_PREFIX) :].decode("utf-8", "replace").rpartition(":")
            if value is not None and index.isdigit():
                self.chunks[(ident, int(index))] = value
                return None
            raise BadRecord(f"chunk record {key!r} without a value or an index")
        if not key.startswith(MANIFEST_PREFIX):
            raise BadRecord(f"record key {key!r} is neither a chunk nor a reference")
        name = key[len(MANIFEST_PREFIX) :].decode("utf-8", "replace")
        if value is None:  # a tombstone: the reference is withdrawn
            self.manifests.pop(name, None)
            return name
        try:
            given = orjson.loads(value)
            manifest = Manifest(
                model=given["model"],
                version=given.get("version"),
                reference_id=given["reference_id"],
                chunks=int(given["chunks"]),
                size=int(given.get("bytes", 0)),
                events=int(given.get("events", 0)),
                source=str(given.get("source", "")),
                published_at=str(given.get("published_at", "")),
            )
        except (orjson.JSONDecodeError, TypeError, KeyError, ValueError) as exc:
            raise BadRecord(f"manifest of {name!r} is not readable: {exc}") from None
        self.manifests[name] = manifest
        return name

    def text(self, manifest: Manifest) -> bytes | None:
        """The reference's canonical text, when every chunk is here and the hash matches."""
        known = self.texts.get(manifest.reference_id)
        if known is not None:
            return known
        parts = [self.chunks.get((manifest.reference_id, i)) for i in range(manifest.chunks)]
        if any(p is None for p in parts):
            return None
        text = b"".join(p for p in parts if p is not None)
        if reference_id(text) != manifest.reference_id:
            return None
        self.texts[manifest.reference_id] = text
        return text


def events_of(text: bytes) -> list[dict[str, object]]:
    """The events of a canonical text."""
    return [orjson.loads(line) for line in text.splitlines() if line]
