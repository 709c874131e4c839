"""Raw records as the engine sees them, whatever their source: parallel lists per batch, and
the offsets a commit records."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(slots=True)
class RecordBatch:
    """Raw records as parallel lists, whatever their source (Kafka or a file)."""

    keys: list[bytes | None] = field(default_factory=list)
    values: list[bytes | None] = field(default_factory=list)
    topics: list[str] = field(default_factory=list)
    partitions: list[int] = field(default_factory=list)
    offsets: list[int] = field(default_factory=list)
    timestamps: list[float | None] = field(default_factory=list)  # epoch seconds
    # partitions whose end was reached in this batch (partition EOF), for the label gate
    ends: set[tuple[str, int]] = field(default_factory=set)

    def __len__(self) -> int:
        return len(self.values)

    def append(
        self,
        key: bytes | None,
        value: bytes | None,
        topic: str,
        partition: int,
        offset: int,
        timestamp: float | None,
    ) -> None:
        self.keys.append(key)
        self.values.append(value)
        self.topics.append(topic)
        self.partitions.append(partition)
        self.offsets.append(offset)
        self.timestamps.append(timestamp)


def next_offsets(batch: RecordBatch, only: str | None = None) -> dict[tuple[str, int], int]:
    """Per partition, the offset after the batch's last record (what a commit records); with
    `only`, the partitions of that topic alone (labels are not the group's to commit)."""
    offsets: dict[tuple[str, int], int] = {}
    for topic, partition, offset in zip(batch.topics, batch.partitions, batch.offsets, strict=True):
        if only is None or topic == only:
            offsets[(topic, partition)] = offset + 1
    return offsets


@dataclass(slots=True)
class DeadLetter:
    """A record that is not a readable prediction event; `index` points into its batch."""

    index: int
    reason: str  # short code, a metric label
    detail: str  # a sentence for the operator
