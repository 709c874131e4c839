"""Tools around the monitor: the demo, the local broker, synthetic streams, the alerts tail."""
