"""The result of a check that cannot judge yet: no reference, too few events, no threshold.

Such a result has no health (`healthy` None): it never fires or resolves an alert, and its
reason says what is missing.
"""

from __future__ import annotations

import math

from stream_monitor.alerts.contract import Detail, Kind
from stream_monitor.alerts.results import CheckResult

NO_REFERENCE = "no reference for this model"


def not_judged(
    kind: Kind,
    test: str,
    threshold: float,
    reason: str,
    score: float = math.nan,
    details: dict[str, Detail] | None = None,
) -> CheckResult:
    """A check that could not be judged, and why."""
    return CheckResult(kind, test, score, threshold, None, details=details or {}, reason=reason)
