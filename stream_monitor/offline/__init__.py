"""Offline modes over files: replay, backtest, the sweep of settings and the report."""
