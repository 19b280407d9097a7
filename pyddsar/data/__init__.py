"""Data: WIDER Face ground-truth readers (more loaders live beside them)."""
