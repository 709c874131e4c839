"""Build examples/nile/: a real prediction stream with a documented change point.

The data: annual flow of the Nile at Aswan, 1871-1970 (10^8 m^3), as shipped inside the
statsmodels wheel (`statsmodels/datasets/nile/nile.csv`; public domain). Its description
there says "There is an apparent changepoint near 1898", citing Cobb, G. W. (1978), "The
problem of the Nile: conditional solution to a changepoint problem", Biometrika 65(2),
243-251. The flow is high up to 1898 (1100 that year) and low from 1899 on (774).

The "model": a forecaster of this year's flow from the two previous years' flows (features
`flow_lag1`, `flow_lag2`), fitted by least squares on the years before the change
(1873-1898, the first two years only feed the lags). Its reference is those same years run
through it, as a team would take its training period. The stream is every year 1873-1970
as prediction events (contract §1) with the true flow as `actual`; the 1899 event, the
first of the low-flow regime, carries `"change_point": true`.

Regenerate (statsmodels is only needed here, never at run time):

    pip install statsmodels        # or: --csv PATH/TO/nile.csv
    python examples/nile/generate.py
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import sys
from pathlib import Path

import numpy as np

MODEL = "nile-flow"
VERSION = "ols-1873-1898"
FIRST_CHANGED_YEAR = 1899
HERE = Path(__file__).resolve().parent


def shipped_csv() -> Path:
    """The CSV inside the installed statsmodels package (found without importing it)."""
    spec = importlib.util.find_spec("statsmodels")
    if spec is None or not spec.submodule_search_locations:
        sys.exit("statsmodels is not installed: pip install statsmodels (or give --csv)")
    return Path(next(iter(spec.submodule_search_locations))) / "datasets" / "nile" / "nile.csv"


def read_csv(path: Path) -> tuple[list[int], list[float]]:
    rows = np.loadtxt(path, delimiter=",", skiprows=1, ndmin=2)
    return [int(y) for y in rows[:, 0]], [float(v) for v in rows[:, 1]]


def build(
    years: list[int], flows: list[float]
) -> tuple[list[dict[str, object]], list[dict[str, object]]]:
    """(stream events, reference events): lag features, least-squares predictions."""
    flow = np.asarray(flows)
    year = np.asarray(years)[2:]
    lags = np.column_stack([flow[1:-1], flow[:-2]])  # lag1, lag2 of years[2:]
    target = flow[2:]
    train = year < FIRST_CHANGED_YEAR
    design = np.column_stack([np.ones(len(target)), lags])
    coef, *_ = np.linalg.lstsq(design[train], target[train], rcond=None)
    prediction = design @ coef
    events: list[dict[str, object]] = []
    for i, y in enumerate(year.tolist()):
        event: dict[str, object] = {
            "model": MODEL,
            "model_version": VERSION,
            "event_id": f"nile-{y}",
            "timestamp": f"{y}-01-01T00:00:00Z",
            "features": {"flow_lag1": lags[i, 0], "flow_lag2": lags[i, 1]},
            "prediction": round(float(prediction[i]), 1),
            "actual": float(target[i]),
        }
        if y == FIRST_CHANGED_YEAR:
            event["change_point"] = True
        events.append(event)
    reference = [
        {k: v for k, v in e.items() if k != "change_point"}
        for e, t in zip(events, train, strict=True)
        if t
    ]
    return events, reference


def write_jsonl(path: Path, events: list[dict[str, object]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = (json.dumps(e, separators=(",", ":")) for e in events)
    path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--csv", type=Path, help="nile.csv (default: statsmodels' own copy)")
    parser.add_argument("--out", type=Path, default=HERE, help="directory to write")
    args = parser.parse_args(argv)
    years, flows = read_csv(args.csv or shipped_csv())
    events, reference = build(years, flows)
    write_jsonl(args.out / "nile-flow.jsonl", events)
    write_jsonl(args.out / "reference" / f"{MODEL}.jsonl", reference)
    print(f"{len(events)} events, {len(reference)} reference events -> {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
