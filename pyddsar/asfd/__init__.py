"""ASFD building blocks (SPEC section 6), one concept per module:

* :mod:`.gumbel`    straight-through Gumbel-max selection and the temperature schedule
* :mod:`.autofe`    AutoFE cell (supernet ``AutoFE`` and discrete ``DerivedAutoFE``)
* :mod:`.autofa`    AutoFA cells and the AutoFAE neck (``AutoFAE``, ``DerivedAutoFAE``)
* :mod:`.config`    ``ASFDConfig`` (what a saved ASFD detector is)
* :mod:`.retinanet` the RetinaNet-style ``asfd-baseline`` modules (anchors, matcher, test protocol)
* :mod:`.build`     ``build_asfd`` (from a config), ``build_asfd_baseline`` (from parts), ``config_of``
* :mod:`.slicing`   channel-sliceable convolution
* :mod:`.supernet`  the scaling supernet, subnet extraction, genetic search, latency probe
* :mod:`.params`    architecture / weight parameter split for bi-level optimisation

The ResNet-18/34/50 backbones (``ResNet``, ``build_backbone``, ...) are :mod:`pyddsar.models.resnet`'s,
re-exported here.
"""

from .autofa import (
    PLACEMENTS,
    AutoFA,
    AutoFACell,
    AutoFACellSpec,
    AutoFAE,
    AutoFAESpec,
    DerivedAutoFACell,
    DerivedAutoFAE,
    StackedAutoFAE,
)
from .autofe import DEFAULT_OPS, AutoFE, AutoFESpec, DerivedAutoFE, OpSpec
from .build import build_asfd, build_asfd_baseline, config_of, make_backbone
from .config import ASFDConfig, backbone_fields
from .gumbel import gumbel_max_st, gumbel_noise, tau_schedule
from .params import arch_parameters, weight_parameters
from ..models.resnet import ResNet, build_backbone, load_backbone_weights, resnet18, resnet34, resnet50
from .retinanet import (
    ASFD_TEST_PROTOCOL,
    ASFDDetector,
    InferenceProtocol,
    asfd_anchors,
    asfd_postprocess,
    decode_boxes,
    encode_boxes,
    feature_sizes,
    match_anchors,
)
from .slicing import SlicedConv2d
from .supernet import (
    Genes,
    GeneticResult,
    ScalingSpace,
    ScalingSupernet,
    channel_cap,
    crossover,
    genetic_search,
    measure_latency_ms,
    mutate,
)

import types as _types

__all__ = sorted(n for n, v in dict(globals()).items() if not n.startswith("_") and not isinstance(v, _types.ModuleType))
