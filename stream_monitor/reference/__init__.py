"""References: loaded from files, prepared once, compacted, calibrated."""
