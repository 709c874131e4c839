"""Digests of the alerts a fixed set of streams gives, to show that a change of the engine's
insides left every alert byte for byte as it was.

Streams (written to --workdir, then replayed with `stream-monitor replay`, no broker):

- `demo`: the demo's traffic (`stream_monitor.tools.demo`: three models, 20 000 events each,
  seed 1, event times from a fixed start, one malformed record per 5 000 events, in the
  order the demo sends them), with the demo's references, under four settings with the
  window test judging input drift (`--input-drift-rule window`, the rule these digests were
  first taken with): the other defaults; `--latency-p99-threshold-ms 40 --min-accuracy
  0.5`; the same with `--prediction-test ks`; and a stream whose regressor's actuals jump by
  3 after event 9 000; then the defaults with the sequential rule (its own digest);
- `nile`: the shipped Nile backtest (`examples/nile`), whose alerts must equal
  `docs/backtest/alerts.jsonl`.

Prints one line per run: alerts, sha256 of the alerts file. Run it on two versions of the
code and compare the lines (the figures of a run are in docs/benchmarks.md).

    python bench/alert_digests.py [--workdir DIR]
"""

from __future__ import annotations

import argparse
import hashlib
import subprocess
import sys
import tempfile
from pathlib import Path

import orjson

from stream_monitor.tools.demo import BAD_EVERY, MODELS, write_references

EVENTS_PER_MODEL = 20_000
T0 = 1_767_225_600.0
RATE = 1000.0  # events/s of the demo's pacing: event times 3 ms apart per model
ROOT = Path(__file__).resolve().parent.parent
BAD = b'{"features": "not an object"'


def demo_stream(path: Path, jump_actuals: bool = False) -> None:
    """The demo's records in the order it sends them (its `_produce`), keys dropped: the
    file's events name their model."""
    lines: list[bytes] = []
    sent = 0
    chunk = 500
    for start in range(0, EVENTS_PER_MODEL, chunk):
        count = min(chunk, EVENTS_PER_MODEL - start)
        streams = [
            m.events(start, count, seed=1, t0=T0, interval_s=len(MODELS) / RATE) for m in MODELS
        ]
        for i in range(count):
            for events in streams:
                e = events[i]
                if jump_actuals and e["model"] == "eta-regressor" and start + i >= 9000:
                    e = {**e, "actual": float(e["actual"]) + 3.0}  # type: ignore[arg-type]
                lines.append(orjson.dumps(e))
                sent += 1
                if sent % BAD_EVERY == 0:
                    lines.append(BAD)
    path.write_bytes(b"\n".join(lines) + b"\n")


def replay(stream: Path, out: Path, args: list[str]) -> tuple[int, str]:
    command = [sys.executable, "-m", "stream_monitor.cli", "replay", str(stream)]
    subprocess.run([*command, "--out", str(out), *args], check=True, capture_output=True)
    data = out.read_bytes()
    return len(data.splitlines()), hashlib.sha256(data).hexdigest()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workdir", type=Path, help="default: a temporary directory")
    opts = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        work = opts.workdir or Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        refs = write_references(work)
        plain, jumped = work / "demo.jsonl", work / "demo-jump.jsonl"
        demo_stream(plain)
        demo_stream(jumped, jump_actuals=True)
        labelled = ["--latency-p99-threshold-ms", "40", "--min-accuracy", "0.5"]
        window = ["--input-drift-rule", "window"]  # the input-drift rule the digests began with
        runs = [
            ("demo, defaults", plain, window),
            ("demo, latency and accuracy", plain, [*window, *labelled]),
            ("demo, prediction KS", plain, [*window, *labelled, "--prediction-test", "ks"]),
            ("demo, regressor's actuals jump", jumped, window),
            ("demo, sequential input drift", plain, ["--input-drift-rule", "sequential"]),
        ]
        for name, stream, extra in runs:
            n, digest = replay(stream, work / "alerts.jsonl", ["--reference", str(refs), *extra])
            print(f"{name}: {n} alerts, sha256 {digest}")
        nile = ROOT / "examples" / "nile"
        n, digest = replay(
            nile / "nile-flow.jsonl",
            work / "nile-alerts.jsonl",
            ["--reference", str(nile / "reference"), "--config", str(nile / "monitor.yaml")],
        )
        shipped = (ROOT / "docs" / "backtest" / "alerts.jsonl").read_bytes()
        same = (work / "nile-alerts.jsonl").read_bytes() == shipped
        print(f"nile backtest: {n} alerts, sha256 {digest}, equal to docs/backtest: {same}")
        return 0 if same else 1


if __name__ == "__main__":
    raise SystemExit(main())
