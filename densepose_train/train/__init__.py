"""The training loop (see trainer.py)."""
