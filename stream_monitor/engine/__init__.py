"""The deterministic core: routing by model, windows, the check cadence, observers."""
