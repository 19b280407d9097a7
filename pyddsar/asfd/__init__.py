"""ASFD building blocks (SPEC section 6): Gumbel selection, AutoFE, AutoFA, RetinaNet baseline, scaling supernet."""
