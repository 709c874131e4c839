"""Build examples/segments/: model `shop` sold in FR (55 %), DE (30 %) and twelve small
countries; from its event 4 000, DE's inputs shift by two standard deviations (a broken
feed in one market). `monitor.yaml` monitors it per country (`segment_by`), so the shift
is seen in DE's window instead of diluted in the whole traffic.

    python examples/segments/generate.py
    stream-monitor replay examples/segments/events.jsonl \\
        --reference examples/segments/reference --config examples/segments/monitor.yaml
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import orjson

from stream_monitor.tools.synthetic import SyntheticModel

HERE = Path(__file__).resolve().parent
SMALL = [f"C{i:02d}" for i in range(12)]


def country(rng: np.random.Generator) -> str:
    u = rng.random()
    return "FR" if u < 0.55 else "DE" if u < 0.85 else str(rng.choice(SMALL))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="write the segments example's files")
    parser.add_argument("--out", type=Path, default=HERE, help="directory (default: here)")
    out = parser.parse_args(argv).out
    rng = np.random.default_rng(5)
    calm = SyntheticModel("shop", n_features=6)
    broken = SyntheticModel("shop", n_features=6, drift_start=0, drift_shift=2.0)
    usual, shifted = calm.events(0, 12000, seed=1), broken.events(0, 12000, seed=1)
    events = []
    for i in range(12000):
        where = country(rng)
        event = shifted[i] if where == "DE" and i >= 4000 else usual[i]
        events.append({**event, "features": {**event["features"], "country": where}})
    reference = [
        {**e, "features": {**e["features"], "country": country(rng)}} for e in calm.reference(5000)
    ]
    (out / "reference").mkdir(parents=True, exist_ok=True)
    lines = b"".join(orjson.dumps(e) + b"\n" for e in reference)
    (out / "reference" / "shop.jsonl").write_bytes(lines)
    (out / "events.jsonl").write_bytes(b"".join(orjson.dumps(e) + b"\n" for e in events))
    print(f"wrote {len(events)} events to {out / 'events.jsonl'} and the reference")


if __name__ == "__main__":
    main()
