"""Appearance: what the person wears and what stands behind them (pure NumPy)."""
