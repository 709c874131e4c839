"""The options of `stream-monitor demo` (argparse only: the command line is built without
importing the demo, which needs the Kafka client)."""

from __future__ import annotations

import argparse


def add_demo_arguments(demo: argparse.ArgumentParser) -> None:
    demo.add_argument(
        "--bootstrap-servers",
        default="127.0.0.1:9092",
        help="the broker; a local one is started there if none answers (default: %(default)s)",
    )
    demo.add_argument(
        "--events-per-model",
        type=int,
        default=30_000,
        help="events sent for each of the three models (default: %(default)s)",
    )
    demo.add_argument(
        "--rate", type=float, default=3000.0, help="events/s, all models (%(default)s)"
    )
    demo.add_argument(
        "--metrics-port",
        type=int,
        default=9108,
        help="the monitor's /metrics, /status and /healthz, on 127.0.0.1 (default: %(default)s)",
    )
    demo.add_argument(
        "--workdir", default=".demo", help="where references and logs go (default: %(default)s)"
    )
    demo.add_argument(
        "--no-broker",
        action="store_true",
        help="never start the local broker (one must be reachable)",
    )
    demo.add_argument(
        "--references-only",
        action="store_true",
        help="write the demo models' references to WORKDIR/reference and exit",
    )
    demo.add_argument(
        "--produce-only",
        action="store_true",
        help="only send the demo traffic to the existing demo-predictions topic",
    )
