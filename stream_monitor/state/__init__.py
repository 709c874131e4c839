"""Persisted state: window, alert and label-join state as changelog records, and restore."""
