"""The import rules of docs/architecture.md hold, and a wrong import breaks them."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
LINT = Path(sys.executable).with_name("lint-imports")


def _lint(package_parent: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(LINT), "--config", str(ROOT / "pyproject.toml"), "--no-cache"],
        cwd=package_parent,
        env={"PYTHONPATH": str(package_parent), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_the_contracts_are_kept() -> None:
    done = _lint(ROOT)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "0 broken" in done.stdout


@pytest.mark.parametrize(
    ("module", "line", "contract"),
    [
        ("detectors/ks.py", "import stream_monitor.config.detector", "numpy and scipy only"),
        ("engine/core.py", "import urllib.request", "never knows Kafka"),
        ("window/ring.py", "from stream_monitor.checks import run", "lower layer never imports"),
        ("offline/replay.py", "import confluent_kafka", "Offline modes never import Kafka"),
        ("checks/plan.py", "from stream_monitor.checks import run", "No import cycles"),
    ],
)
def test_a_wrong_import_breaks_a_contract(
    tmp_path: Path, module: str, line: str, contract: str
) -> None:
    shutil.copytree(ROOT / "stream_monitor", tmp_path / "stream_monitor")
    target = tmp_path / "stream_monitor" / module
    text = target.read_text()
    at = text.index("from __future__ import annotations\n") + len(
        "from __future__ import annotations\n"
    )
    target.write_text(text[:at] + line + "  # noqa\n" + text[at:])
    done = _lint(tmp_path)
    assert done.returncode != 0
    broken = done.stdout.split("Broken contracts")[-1]
    assert contract in broken, done.stdout


@pytest.mark.parametrize(
    ("modules", "absent"),
    [
        (
            ["stream_monitor.offline.replay", "stream_monitor.offline.backtest", "stream_monitor"],
            ["confluent_kafka"],
        ),
        (["stream_monitor.monitor"], ["confluent_kafka", "prometheus_client", "urllib.request"]),
        (
            ["stream_monitor.engine.core", "stream_monitor.labels.join"],
            [
                "confluent_kafka",
                "prometheus_client",
                "urllib.request",
                "stream_monitor.sinks.webhooks",
                "stream_monitor.config.settings",
            ],
        ),
    ],
)
def test_what_an_import_loads(modules: list[str], absent: list[str]) -> None:
    """Checked in a fresh interpreter through sys.modules, not only in the import graph."""
    code = f"import sys, {', '.join(modules)}; print(sorted(set({absent!r}) & set(sys.modules)))"
    if "stream_monitor" in modules:
        code = code.replace("; print", "; stream_monitor.Monitor; print")
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"
