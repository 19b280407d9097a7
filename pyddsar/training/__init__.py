"""Training of pyddsar detectors: losses, ATSS targets, the training loop (SPEC section 4)."""
