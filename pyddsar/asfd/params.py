"""Architecture vs. weight parameters of the searchable ASFD modules.

Searchable modules name their architecture parameters with the prefix ``arch_`` (``arch_alpha``,
``arch_beta``, ``arch_kappa``, ``arch_gamma``); everything else is a network weight.
"""

from __future__ import annotations

from typing import List

import torch
from torch import nn


def _is_arch(name: str) -> bool:
    return any(part.startswith("arch_") for part in name.split("."))


def arch_parameters(module: nn.Module) -> List[torch.nn.Parameter]:
    """The architecture parameters (names with an ``arch_`` component) of ``module``."""
    return [p for n, p in module.named_parameters() if _is_arch(n)]


def weight_parameters(module: nn.Module) -> List[torch.nn.Parameter]:
    """The network weights (every parameter that is not an architecture parameter)."""
    return [p for n, p in module.named_parameters() if not _is_arch(n)]
