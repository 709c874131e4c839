"""The package version, in one place (the user agent of webhooks reads it)."""

__version__ = "0.1.0"
