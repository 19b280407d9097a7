"""ASFD building blocks (SPEC section 6), one concept per module:

* :mod:`.gumbel`    straight-through Gumbel-max selection and the temperature schedule
* :mod:`.autofe`    AutoFE cell (supernet ``AutoFE`` and discrete ``DerivedAutoFE``)
* :mod:`.autofa`    AutoFA cells and the AutoFAE neck (``AutoFAE``, ``DerivedAutoFAE``)
* :mod:`.config`    ``ASFDConfig`` (what a saved ASFD detector is) and ``build_asfd``
* :mod:`.retinanet` the RetinaNet-style ``asfd-baseline`` (anchors, matcher, test protocol)
* :mod:`.resnet`    ResNet-18/34/50 backbones returning C2..C5
* :mod:`.slicing`   channel-sliceable convolution
* :mod:`.supernet`  the scaling supernet, subnet extraction, genetic search, latency probe
* :mod:`.params`    architecture / weight parameter split for bi-level optimisation
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
from .config import ASFDConfig, backbone_fields, build_asfd
from .gumbel import gumbel_max_st, gumbel_noise, tau_schedule
from .params import arch_parameters, weight_parameters
from .resnet import ResNet, build_backbone, load_backbone_weights, resnet18, resnet34, resnet50
from .retinanet import (
    ASFD_TEST_PROTOCOL,
    ASFDDetector,
    InferenceProtocol,
    asfd_anchors,
    asfd_postprocess,
    build_asfd_baseline,
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
