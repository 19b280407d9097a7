"""pyddsar: lightweight face detector design (DamoFD's DDSAR search, ASFD) with a C++/CUDA core.

Heavy dependencies (torch) are imported only by the modules that need them.
"""

from ._version import __version__
from .arch import Arch, Block, presets
from .backends import backends, cuda_device_count, cuda_status, has_cuda
from .arrangement import count_arrangement_regions
from .regions import LowerBound, linear_regions, linear_regions_lower_bound, log_linear_regions
from .score import FsProbe, ScoreReport, score, score_batch, score_report
from .search import BUDGETS, SPACES, SearchResult, SearchSpace, search
from .stage_weights import stage_weights  # torch is imported only when it is called

__all__ = [
    "__version__",
    "Arch",
    "Block",
    "presets",
    "has_cuda",
    "cuda_device_count",
    "cuda_status",
    "backends",
    "linear_regions",
    "log_linear_regions",
    "linear_regions_lower_bound",
    "LowerBound",
    "count_arrangement_regions",
    "stage_weights",
    "search",
    "SearchResult",
    "SearchSpace",
    "SPACES",
    "BUDGETS",
    "score",
    "score_batch",
    "score_report",
    "ScoreReport",
    "FsProbe",
    "search_family",
    "SearchFamily",
    "LatencyTable",
    "build_latency_table",
    "load_latency_table",
    "Detector",
    "Detections",
    "export_onnx",
    "models",
]

# Detector and latency code need torch: imported on first use so that `import pyddsar` stays light.
_LAZY = {"search_family": ("search_family", "search_family"), "SearchFamily": ("search_family", "SearchFamily"),
         "LatencyTable": ("latency", "LatencyTable"), "build_latency_table": ("latency", "build_latency_table"),
         "load_latency_table": ("latency", "load_latency_table"),
         "Detector": ("inference", "Detector"), "Detections": ("inference", "Detections"),
         "export_onnx": ("onnx_export", "export_onnx"), "models": ("models", None)}


def __getattr__(name):
    if name in _LAZY:
        import importlib

        mod_name, attr = _LAZY[name]
        mod = importlib.import_module(f".{mod_name}", __name__)
        value = mod if attr is None else getattr(mod, attr)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
