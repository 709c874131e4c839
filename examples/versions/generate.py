"""Build examples/versions/: model `scorer` in two versions, v1 in production and v2 a canary
on 1 event in 4, interleaved; v2's inputs drift from its event 1 500. The reference is v1's
validation set (`reference/scorer.jsonl`), so both versions are judged against it.

    python examples/versions/generate.py
    stream-monitor replay examples/versions/events.jsonl \\
        --reference examples/versions/reference --version-policy separate \\
        --window-size 500 --check-every 50
"""

from __future__ import annotations

import argparse
from pathlib import Path

import orjson

from stream_monitor.tools.synthetic import SyntheticModel

HERE = Path(__file__).resolve().parent


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="write the versions example's files")
    parser.add_argument("--out", type=Path, default=HERE, help="directory (default: here)")
    out = parser.parse_args(argv).out
    stable = SyntheticModel("scorer", n_features=8)
    canary = SyntheticModel("scorer", n_features=8, drift_start=1500, drift_shift=1.5)
    v1 = [{**e, "model_version": "v1"} for e in stable.events(0, 9000, seed=1)]
    v2 = [{**e, "model_version": "v2"} for e in canary.events(0, 3000, seed=2)]
    events = []
    for i, event in enumerate(v2):  # three v1 events, then one v2 event
        events.extend(v1[3 * i : 3 * i + 3])
        events.append(event)
    (out / "reference").mkdir(parents=True, exist_ok=True)
    (out / "reference" / "scorer.jsonl").write_bytes(
        b"".join(orjson.dumps(e) + b"\n" for e in stable.reference(5000))
    )
    (out / "events.jsonl").write_bytes(b"".join(orjson.dumps(e) + b"\n" for e in events))
    print(f"wrote {len(events)} events to {out / 'events.jsonl'} and the reference")


if __name__ == "__main__":
    main()
