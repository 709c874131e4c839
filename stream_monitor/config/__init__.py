"""Settings: pydantic models for every option, per-model overrides, and their sources."""
