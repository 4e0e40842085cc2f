"""The farm: turns one configuration into a dataset (render, resume, merge, report)."""
