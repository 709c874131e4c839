"""stream-monitor: Kafka-native monitoring of machine-learning models in production.

`from stream_monitor import Monitor` gives the in-process API (`stream_monitor.monitor`);
the rest of the package is the service and its offline modes.
"""

from typing import TYPE_CHECKING, Any

from stream_monitor._version import __version__

__all__ = ["Monitor", "__version__"]

if TYPE_CHECKING:
    from stream_monitor.monitor import Monitor


def __getattr__(name: str) -> Any:
    """`Monitor` is imported on first use, so `import stream_monitor.x` stays light."""
    if name == "Monitor":
        from stream_monitor.monitor import Monitor

        return Monitor
    raise AttributeError(f"module 'stream_monitor' has no attribute {name!r}")
