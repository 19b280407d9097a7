"""The pyddsar detector file: weights + the full architecture and preprocessing config + a checksum.

`save_model(model, "model.pt")` writes everything `pyddsar detect --weights model.pt` needs, so no other
flag is required; `load_model` (the one loader of detector weights: model files, insightface SCRFD ONNX
files and plain checkpoints) rebuilds the model from the stored config and refuses a file whose
checksum, format or config does not match, saying what is wrong. The file is a torch.save archive of
plain data (loaded with weights_only=True, so opening it never runs code from the file).
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import asdict, dataclass
from typing import Optional

import torch

from ._atomic import torch_save
FORMAT = "pyddsar-detector"
VERSION = 1


@dataclass(frozen=True)
class Preprocessing:
    """How images become network inputs (SPEC section 4's inference protocol)."""

    input_size: int = 640          # the longer side is scaled to this, then padded to a square
    mean: float = 127.5
    std: float = 128.0
    rgb: bool = True               # channel order the network expects
    score_threshold: float = 0.02
    nms_threshold: float = 0.45
    pre_nms_topk: int = 5000
    max_detections: int = 750


def _checksum(config: dict, preprocessing: dict, state: dict) -> str:
    """sha256 over the canonical JSON of the configs and every tensor's name, dtype, shape and bytes."""
    h = hashlib.sha256()
    h.update(json.dumps({"config": config, "preprocessing": preprocessing}, sort_keys=True).encode())
    for name in sorted(state):
        t = state[name].detach().cpu().contiguous().reshape(-1)
        h.update(f"{name}|{t.dtype}|{tuple(state[name].shape)}|".encode())
        h.update(t.view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()


def default_preprocessing(model) -> Preprocessing:
    """The inference protocol a detector is evaluated with: SCRFD's (SPEC section 4) by default, the
    model's own ``protocol`` when it has one (ASFD: scores over 0.05, top 2000, NMS 0.4, 750 kept)."""
    p = getattr(model, "protocol", None)
    if p is None:
        return Preprocessing()
    return Preprocessing(score_threshold=p.score_threshold, nms_threshold=p.nms_threshold, pre_nms_topk=p.pre_nms_topk,
                         max_detections=p.max_detections)


def save_model(model, path: str, preprocessing: Optional[Preprocessing] = None) -> None:
    """Write `model` (a pyddsar detector: it has `.config.to_dict()`) to `path`, atomically; the
    preprocessing defaults to :func:`default_preprocessing`."""
    config = getattr(model, "config", None)
    if config is None or not hasattr(config, "to_dict"):
        raise ValueError("save_model needs a pyddsar detector built from a config (a model with "
                         ".config.to_dict(); an ASFD detector with custom modules has none)")
    preprocessing = preprocessing or default_preprocessing(model)
    if not isinstance(preprocessing, Preprocessing):
        raise ValueError("preprocessing must be a pyddsar.model_file.Preprocessing")
    cfg, pre = config.to_dict(), asdict(preprocessing)
    state = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
    payload = {
        "format": FORMAT,
        "version": VERSION,
        "config": cfg,
        "preprocessing": pre,
        "state_dict": state,
        "checksum": _checksum(cfg, pre, state),
    }
    torch_save(payload, path)


def is_model_file(path: str) -> bool:
    """True when `path` looks like a pyddsar detector file (a torch zip archive with our format tag)."""
    try:
        data = torch.load(path, map_location="cpu", weights_only=True)
    except Exception:
        return False
    return isinstance(data, dict) and data.get("format") == FORMAT


def load_model(path: str, name: Optional[str] = None, device="cpu"):
    """-> (model in eval mode, Preprocessing or None): the one loader of detector weights, recognised by
    content. A pyddsar model file (:func:`save_model`): config, weights and preprocessing from the file,
    checksum verified; an insightface SCRFD ``.onnx`` (the config read from the graph; preprocessing
    None: the family's own); a plain torch dict ``{"config", "state_dict"}``, which needs ``name``.
    ``name`` (a detector preset), when given, must match what the file holds. ValueError when the file
    is missing, corrupt, foreign or for another model."""
    from .models import load_scrfd_onnx, presets
    from .models.onnx_proto import is_onnx  # without importing the onnx package (0.5 s)
    from .models.presets import matches_preset

    if name is not None and name not in presets:
        raise ValueError(f"unknown model {name!r}; use one of {', '.join(presets)}")
    if not os.path.isfile(path):
        raise ValueError(f"weights file not found: {path}")
    if is_onnx(path):
        return load_scrfd_onnx(path, expect=name).to(device), None
    try:
        data = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # a truncated or foreign file: say so instead of a pickle traceback
        raise ValueError(f"{path} is neither an ONNX file nor a readable pyddsar model file: not a readable "
                         f"torch archive ({type(e).__name__}: {str(e).splitlines()[0][:200]})") from None
    if isinstance(data, dict) and data.get("format") != FORMAT and "config" in data and "state_dict" in data:
        return _load_plain_checkpoint(path, data, name, device), None
    model, preprocessing = _load_model_file(path, data)
    if name is not None and not matches_preset(model.config, name):
        raise ValueError(f"{path} holds weights for {model.config.name!r}, not for {name!r}")
    return model.to(device), preprocessing


def _load_plain_checkpoint(path: str, data: dict, name: Optional[str], device):
    from .models import build_detector
    from .models.presets import config_from_dict, matches_preset

    if name is None:
        raise ValueError(f"{path} is a plain checkpoint without a checksum: give --model (name= in Python), "
                         "or convert it with pyddsar.model_file.save_model")
    try:
        cfg = config_from_dict(data["config"])
    except (TypeError, ValueError, KeyError) as e:
        raise ValueError(f"{path}: its config does not describe a pyddsar detector ({e})") from None
    if not matches_preset(cfg, name):
        raise ValueError(f"{path} holds weights for {cfg.name!r}, not for {name!r}")
    model = build_detector(cfg)
    try:
        model.load_state_dict(data["state_dict"])
    except RuntimeError as e:
        raise ValueError(f"{path}: weights do not fit {name!r}: {str(e).splitlines()[0]}") from None
    return model.to(device).eval()


def _load_model_file(path: str, data):
    from .models import build_detector
    from .models.presets import config_from_dict

    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise ValueError(f"{path} is not a pyddsar model file (no '{FORMAT}' tag; see pyddsar.model_file.save_model)")
    if data.get("version") != VERSION:
        raise ValueError(f"{path} has model file version {data.get('version')!r}; this pyddsar reads {VERSION}")
    for key in ("config", "preprocessing", "state_dict", "checksum"):
        if key not in data:
            raise ValueError(f"{path} is corrupt: it lacks '{key}'")
    if _checksum(data["config"], data["preprocessing"], data["state_dict"]) != data["checksum"]:
        raise ValueError(f"{path} is corrupt: its checksum does not match its contents")
    try:
        config = config_from_dict(data["config"])
        preprocessing = Preprocessing(**data["preprocessing"])
    except (TypeError, ValueError, KeyError) as e:
        raise ValueError(f"{path}: its config does not describe a pyddsar detector ({e})") from None
    model = build_detector(config)
    try:
        model.load_state_dict(data["state_dict"], strict=True)
    except RuntimeError as e:
        raise ValueError(f"{path}: its weights do not match its config ({str(e).splitlines()[0]})") from None
    return model.eval(), preprocessing
