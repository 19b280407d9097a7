"""Face detectors in the SCRFD framework (issue 6): searched DDSAR backbones and SCRFD's own."""

from .backbone import Backbone
from .complexity import Complexity, complexity
from .detector import SCRFD, DetectorConfig, RawPredictions, decode
from .mobilenet import MobileNetV1
from .onnx_import import load_scrfd_onnx
from .pafpn import PAFPN
from .presets import build_detector, config_for, presets
from .resnet import ResNetV1e
from .scrfd_head import HeadOutputs, SCRFDHead

__all__ = [
    "Backbone", "MobileNetV1", "ResNetV1e", "PAFPN", "SCRFDHead", "HeadOutputs", "SCRFD", "DetectorConfig",
    "RawPredictions", "decode", "build_detector", "config_for", "presets", "complexity", "Complexity",
    "load_scrfd_onnx",
]
