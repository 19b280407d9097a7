"""Import an insightface SCRFD ONNX file (BN folded into the convs) into a pyddsar :class:`SCRFD`.

The graph is read with the ``onnx`` package: the backbone (ResNetV1e basic/bottleneck or MobileNetV1) is
recognised by walking its conv chain, then the PAFPN neck (10 convs) and the head (tower depth and
width, depthwise or not, shared or per-level, keypoints, per-level scale). The model is built with
``fused=True`` (convs with biases, no BN) and the conv weights are loaded in execution order, each shape
checked. Files with GroupNorm (not foldable) or another layout raise ValueError naming what is missing.
"""

from __future__ import annotations

import dataclasses
import os
from typing import Dict, List, Optional

import numpy as np
import torch
from torch import nn

from .detector import SCRFD, DetectorConfig
from .presets import presets

OUTPUTS = ("score_8", "score_16", "score_32", "bbox_8", "bbox_16", "bbox_32")
KPS_OUTPUTS = ("kps_8", "kps_16", "kps_32")


class _Conv:
    def __init__(self, node, inits):
        self.node = node
        self.input = node.input[0]
        self.output = node.output[0]
        if len(node.input) < 2 or node.input[1] not in inits:
            raise ValueError(f"conv {node.name or node.output[0]} has no constant weight")
        self.weight = inits[node.input[1]]
        self.weight_name = node.input[1]
        self.bias = inits.get(node.input[2]) if len(node.input) > 2 else None
        attrs = {a.name: a for a in node.attribute}
        import onnx

        get = onnx.helper.get_attribute_value
        self.group = int(get(attrs["group"])) if "group" in attrs else 1
        self.stride = tuple(get(attrs["strides"])) if "strides" in attrs else (1, 1)
        self.cout, cin_g, self.k, _ = self.weight.shape
        self.cin = cin_g * self.group

    @property
    def depthwise(self):
        return self.group > 1 and self.group == self.cin


def _load_graph(path):
    try:
        import onnx
        from onnx import numpy_helper
    except ImportError:  # pragma: no cover
        raise ValueError("reading ONNX files needs the 'onnx' package (pip install onnx)") from None
    if not isinstance(path, (str, os.PathLike)) or not os.path.isfile(path):
        raise ValueError(f"ONNX file not found: {path!r}")
    try:
        model = onnx.load(os.fspath(path))
    except Exception as e:  # onnx raises DecodeError and friends
        raise ValueError(f"{path} is not a readable ONNX model ({type(e).__name__})") from None
    g = model.graph
    inits = {t.name: numpy_helper.to_array(t) for t in g.initializer}
    for n in g.node:  # Constant nodes hold the scale factors in some exports
        if n.op_type == "Constant" and n.attribute:
            inits[n.output[0]] = numpy_helper.to_array(n.attribute[0].t)
        elif n.op_type == "Identity" and n.input and n.input[0] in inits:  # deduplicated constants
            inits[n.output[0]] = inits[n.input[0]]
    return g, inits


def _producers(g):
    return {o: n for n in g.node for o in n.output}


def _consumers(g):
    out: Dict[str, list] = {}
    for n in g.node:
        for i in n.input:
            out.setdefault(i, []).append(n)
    return out


def _after_relu(t, cons):
    """Output of the ReLU that consumes `t` (or `t` when none)."""
    for n in cons.get(t, []):
        if n.op_type == "Relu":
            return n.output[0]
    return t


def _resnet(convs, pos, cons, prod, x):
    """Parse ResNetV1e blocks starting at convs[pos] with input tensor x."""
    kind = "bottleneck" if convs[pos].k == 1 else "basic"
    stages: List[List[int]] = []
    while pos < len(convs) and convs[pos].input == x:
        c1 = convs[pos]
        n_main = 3 if kind == "bottleneck" else 2
        main = convs[pos:pos + n_main]
        if len(main) < n_main:
            break
        if kind == "basic" and not (c1.k == 3 and main[1].k == 3):
            break
        if kind == "bottleneck" and not (c1.k == 1 and main[1].k == 3 and main[2].k == 1):
            break
        stride = main[0].stride[0] if kind == "basic" else main[1].stride[0]
        planes = c1.cout
        pos += n_main
        # optional projection shortcut: a 1x1 conv fed (maybe through AveragePool) by x
        if pos < len(convs) and convs[pos].k == 1:
            src = convs[pos].input
            pn = prod.get(src)
            if src == x or (pn is not None and pn.op_type == "AveragePool" and pn.input[0] == x):
                pos += 1
        # the block output: Add of the main branch, then ReLU
        adds = [n for n in cons.get(main[-1].output, []) if n.op_type == "Add"]
        if not adds:
            raise ValueError("ResNet block without a residual Add")
        x = _after_relu(adds[0].output[0], cons)
        if stride == 2 or not stages:
            stages.append([planes, 0, x])
        stages[-1][1] += 1
        stages[-1][2] = x
    return kind, stages, pos


def _mobilenet(convs, pos, cons, x):
    """Parse depthwise-separable pairs (after the stem conv) starting at convs[pos]."""
    layers = []
    while pos + 1 < len(convs) and convs[pos].input == x and convs[pos].depthwise and convs[pos + 1].k == 1:
        dw, pw = convs[pos], convs[pos + 1]
        x = _after_relu(pw.output, cons)
        layers.append((dw.stride[0], pw.cout, x))
        pos += 2
    return layers, pos


def recognise(path) -> DetectorConfig:
    """The :class:`DetectorConfig` (``fused=True``) of an insightface SCRFD ONNX file."""
    return _analyse(path)[0]


def _analyse(path):
    g, inits = _load_graph(path)
    ops = {n.op_type for n in g.node}
    out_names = [o.name for o in g.output]
    missing = [o for o in OUTPUTS if o not in out_names]
    if missing:
        raise ValueError(f"{path}: not an SCRFD model: outputs {', '.join(missing)} are missing (found {out_names})")
    if "InstanceNormalization" in ops or "GroupNormalization" in ops:
        raise ValueError(f"{path}: GroupNorm layers found; only BN models with BN folded into the convs (*_bnkps) are supported")
    use_kps = all(o in out_names for o in KPS_OUTPUTS)
    convs = [_Conv(n, inits) for n in g.node if n.op_type == "Conv"]
    if not convs or convs[0].cin != 3:
        raise ValueError(f"{path}: the first conv does not take a 3-channel image")
    prod, cons = _producers(g), _consumers(g)
    cfg = {}
    c0 = convs[0]
    x = _after_relu(c0.output, cons)
    if len(convs) > 2 and convs[1].depthwise:
        layers, pos = _mobilenet(convs, 1, cons, x)
        if len(layers) < 5:
            raise ValueError(f"{path}: MobileNetV1 backbone too short ({len(layers)} depthwise layers)")
        planes, blocks = [c0.cout, layers[0][1]], []
        for s, cout, _ in layers[1:]:
            if s == 2:
                planes.append(cout)
                blocks.append(0)
            blocks[-1] += 1
        if len(blocks) != 4:
            raise ValueError(f"{path}: MobileNetV1 backbone with {len(blocks)} stages (4 expected)")
        cfg.update(backbone="mobilenetv1", stage_planes=tuple(planes), stage_blocks=tuple(blocks))
        c_outs = [None, None, None, None]
        sx = []
        for s, _, t in layers[1:]:
            if s == 2:
                sx.append(t)
            sx[-1] = t
        c_outs = sx
    elif len(convs) > 3 and convs[1].k == 3 and convs[2].k == 3 and convs[2].cout == 2 * c0.cout:
        x = _after_relu(convs[2].output, cons)
        mp = [n for n in cons.get(x, []) if n.op_type == "MaxPool"]
        if not mp:
            raise ValueError(f"{path}: ResNetV1e stem without its max-pool")
        kind, stages, pos = _resnet(convs, 3, cons, prod, mp[0].output[0])
        if len(stages) != 4:
            raise ValueError(f"{path}: ResNetV1e backbone with {len(stages)} stages recognised (4 expected)")
        cfg.update(backbone="resnetv1e", block=kind, stem_channels=convs[2].cout,
                   stage_planes=tuple(s[0] for s in stages), stage_blocks=tuple(s[1] for s in stages))
        c_outs = [s[2] for s in stages]
    else:
        raise ValueError(f"{path}: backbone not recognised (neither SCRFD's ResNetV1e nor MobileNetV1 stem)")
    # neck: 3 lateral 1x1 convs on C3..C5
    lat = convs[pos:pos + 3]
    if len(lat) < 3 or [c.input for c in lat] != c_outs[1:] or any(c.k != 1 for c in lat):
        raise ValueError(f"{path}: PAFPN lateral convs on C3..C5 not found after the backbone")
    neck = lat[0].cout
    pos += 10
    # head of the first level: tower convs then the class predictor (2 outputs = 2 anchors x 1 class)
    tower = []
    while pos < len(convs) and not (convs[pos].cout == 2 and convs[pos].k == 3):
        tower.append(convs[pos])
        pos += 1
    if pos >= len(convs):
        raise ValueError(f"{path}: class predictor conv (2 outputs) not found")
    dw = any(c.depthwise for c in tower)
    stacked = len(tower) // 2 if dw else len(tower)
    feat = convs[pos].cin
    per_level = len(tower) + 2 + (1 if use_kps else 0)
    head = convs[pos - len(tower):]
    if len(head) != 3 * per_level:
        raise ValueError(f"{path}: head has {len(head)} convs, expected 3 levels x {per_level}")
    shared = all(head[i].weight_name == head[i + per_level].weight_name for i in range(per_level))
    muls = [n for n in g.node if n.op_type == "Mul"]
    cfg.update(neck_channels=neck, stacked_convs=stacked, feat_channels=feat, norm="bn", dw_conv=dw,
               shared_head=shared, use_kps=use_kps, use_scale=len(muls) == 3, fused=True)
    name = "scrfd-onnx"
    for pname, p in presets.items():
        if not isinstance(p, DetectorConfig):  # asfd-baseline: not an SCRFD
            continue
        if dataclasses.replace(p, name=name, fused=True, norm="bn", gn_groups=16) == DetectorConfig(name=name, **cfg):
            name = pname
    config = DetectorConfig(name=name, **cfg)
    return config, convs, muls, inits


def _conv_order(model: SCRFD) -> List[nn.Conv2d]:
    order = []
    hooks = [m.register_forward_hook(lambda m, i, o: order.append(m)) for m in model.modules() if isinstance(m, nn.Conv2d)]
    try:
        with torch.no_grad():
            model.eval()(torch.zeros(1, 3, 64, 64))
    finally:
        for h in hooks:
            h.remove()
    return order


def load_scrfd_onnx(path, expect: Optional[str] = None) -> SCRFD:
    """Build the pyddsar model of an insightface SCRFD ONNX file and load its weights (eval mode).

    ``expect``: a preset name the file must match (e.g. ``"scrfd-2.5g-kps"``); a file for another
    configuration raises ValueError.
    """
    config, convs, muls, inits = _analyse(path)
    if expect is not None:
        if expect not in presets:
            raise ValueError(f"unknown preset {expect!r}; use one of {', '.join(presets)}")
        if config.name != expect:
            raise ValueError(f"{path} holds weights for {config.name!r} ({_describe(config)}), not for {expect!r}")
    model = SCRFD(config)
    order = _conv_order(model)
    if len(order) != len(convs):
        raise ValueError(f"{path}: {len(convs)} convs in the file, the recognised model has {len(order)}")
    with torch.no_grad():
        for i, (m, c) in enumerate(zip(order, convs)):
            if tuple(m.weight.shape) != tuple(c.weight.shape) or m.groups != c.group:
                raise ValueError(f"{path}: conv #{i} has shape {tuple(c.weight.shape)}, the model expects {tuple(m.weight.shape)}")
            m.weight.copy_(torch.from_numpy(np.array(c.weight, dtype=np.float32)))
            if m.bias is not None:
                if c.bias is None:
                    raise ValueError(f"{path}: conv #{i} has no bias (BN not folded?)")
                m.bias.copy_(torch.from_numpy(np.array(c.bias, dtype=np.float32)))
        if config.use_scale:
            for s, mul in zip(model.head.scales, muls):
                v = [inits[i] for i in mul.input if i in inits]
                if not v or np.asarray(v[0]).size != 1:
                    raise ValueError(f"{path}: box scale Mul without a scalar constant")
                s.scale.fill_(float(np.asarray(v[0]).reshape(())))
    return model.eval()


def _describe(c: DetectorConfig) -> str:
    return (f"{c.backbone} {c.block} planes {list(c.stage_planes)} blocks {list(c.stage_blocks)}, neck {c.neck_channels}, "
            f"head {c.stacked_convs}x{c.feat_channels}{' dw' if c.dw_conv else ''}, kps {c.use_kps}")
