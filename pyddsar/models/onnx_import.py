"""Import an insightface SCRFD ONNX file into a pyddsar :class:`SCRFD`, by insightface's rules.

Outputs are identified as insightface's loader does (``insightface/model_zoo/scrfd.py``,
``SCRFD._init_vars``): by count and position, never by name. 6 outputs are scores, boxes at strides
8, 16, 32 with 2 anchors per location; 9 outputs add keypoints; each is ``[N, k]`` or ``[1, N, k]``
(without or with a batch axis). Input and output names and fixed or dynamic input sizes are all
accepted. (10 / 15 outputs, insightface's 5-level one-anchor layout, are refused: pyddsar's detectors
have 3 levels.)

The architecture is read from the graph alone, walking it backwards by who feeds whom: each output
back to its predictor conv (through Reshape / Transpose / Sigmoid and the box scale's Mul), the
predictors to the head tower of their level (3x3 or depthwise-separable convs, BN folded in or
GroupNorm, shared or one per level), the tower to the PAFPN neck (lateral, top-down, smooth, stride-2
down and bottom-up convs, checked one by one), and the neck's inputs C3..C5 down the backbone
(ResNetV1e basic / bottleneck blocks with average-pool shortcuts, or MobileNetV1) to the image. Every
conv is given to the pyddsar module at the same place in that structure, with its stride, padding and
groups checked, so a file whose parts are in another order imports the same model and a file that is
not SCRFD raises ValueError naming the node or pattern that did not fit.
"""

from __future__ import annotations

import dataclasses
import itertools
from dataclasses import dataclass
from typing import Dict, List, Optional, Tuple

import numpy as np
import torch
from torch import nn

from .detector import SCRFD, DetectorConfig
from .onnx_graph import ConvUnit, Graph, GraphMismatch, Norm, load_graph, node_label
from .presets import presets

STRIDES = (8, 16, 32)
NUM_ANCHORS = 2
KINDS = ("score", "bbox", "kps")
CHANNELS = {"score": 1, "bbox": 4, "kps": 10}
_SHAPE_OPS = ("Reshape", "Flatten", "Squeeze", "Unsqueeze", "Identity")


@dataclass(frozen=True)
class OnnxLayout:
    """How a file presents the model: ``input_name``; ``input_size`` (width, height) when fixed, else
    None; ``output_names`` in insightface's order; ``batched``: rank-3 outputs ``[1, N, k]`` (else
    ``[N, k]``); ``use_kps``: 9 outputs."""

    input_name: str
    input_size: Optional[Tuple[int, int]]
    output_names: Tuple[str, ...]
    batched: bool
    use_kps: bool


@dataclass
class _Parsed:
    """What the walk found: the config fields and, for every module, the graph part it takes."""

    cfg: dict
    backbone: dict
    neck: Dict[str, List[ConvUnit]]
    towers: List[List[ConvUnit]]
    predictors: List[Dict[str, ConvUnit]]
    scales: List[Optional[float]]
    layout: OnnxLayout


# ------------------------------------------------------------------------------------------------
# inputs and outputs


def read_layout(g: Graph) -> OnnxLayout:
    """Input and output conventions of the file (insightface's rules), checked."""
    if len(g.inputs) != 1:
        g.fail(f"not an SCRFD model: {len(g.inputs)} graph inputs ({', '.join(i.name for i in g.inputs)}), one image "
               "tensor [N, 3, H, W] expected")
    inp = g.inputs[0]
    dims = g.dims(inp)
    if dims is not None and (len(dims) != 4 or (isinstance(dims[1], int) and dims[1] not in (0, 3))):
        g.fail(f"not an SCRFD model: input {inp.name!r} has shape {dims}, [N, 3, H, W] expected")
    size = None
    if dims is not None and all(isinstance(d, int) and d > 0 for d in dims[2:]):
        size = (int(dims[3]), int(dims[2]))
    n = len(g.outputs)
    names = tuple(o.name for o in g.outputs)
    if n in (10, 15):
        g.fail(f"{n} outputs: insightface's 5-level layout (strides 8..128, one anchor per location); pyddsar's "
               "SCRFD detectors have 3 levels (6 or 9 outputs)")
    if n not in (6, 9):
        g.fail(f"not an SCRFD model: {n} outputs ({', '.join(names)}); insightface's SCRFD has 6 (scores, boxes at "
               "strides 8, 16, 32) or 9 (and keypoints), identified by position")
    ranks = [_output_rank(g, i) for i in range(n)]
    if len(set(ranks)) != 1 or ranks[0] not in (2, 3):
        g.fail(f"output ranks {ranks}: insightface reads outputs as [N, k] or [1, N, k] (rank 2 or 3, all alike)")
    for i, o in enumerate(g.outputs):
        d = g.dims(o)
        k = CHANNELS[KINDS[i // 3]]
        if d and isinstance(d[-1], int) and d[-1] not in (0, k):
            g.fail(f"output #{i} {o.name!r} ({KINDS[i // 3]} at stride {STRIDES[i % 3]} by insightface's order) has "
                   f"shape {d}; its last axis must be {k}")
    return OnnxLayout(inp.name, size, names, ranks[0] == 3, n == 9)


def _output_rank(g: Graph, i: int) -> Optional[int]:
    d = g.dims(g.outputs[i])
    if d is None:  # no shape recorded: let ONNX infer it
        import onnx

        inferred = onnx.shape_inference.infer_shapes(onnx.ModelProto.FromString(g.model.SerializeToString()))
        d = g.dims(inferred.graph.output[i])
    return None if d is None else len(d)


def _output_chain(g: Graph, index: int, batched: bool) -> Tuple[ConvUnit, Optional[float]]:
    """Walk output ``index`` back to its predictor conv: (conv, box scale or None). The conv map is
    made NHWC by a Transpose [0, 2, 3, 1]; files without a batch axis (insightface's model packs)
    use [2, 3, 0, 1] before reshaping to [-1, k], the same order for their single image."""
    perms = ([0, 2, 3, 1],) if batched else ([0, 2, 3, 1], [2, 3, 0, 1])
    name = g.outputs[index].name
    kind = KINDS[index // 3]
    what = f"output #{index} {name!r} ({kind} at stride {STRIDES[index % 3]} by insightface's order)"
    t, sigmoids, scale, transposed = name, 0, None, False
    while True:
        n = g.prod(t)
        if n is None:
            g.fail(f"{what} is not computed from a conv")
        op = n.op_type
        if op == "Conv":
            break
        if op in _SHAPE_OPS:
            if transposed and op != "Identity":
                g.fail(f"{what}: {node_label(n)} reshapes the conv output before its NCHW -> NHWC Transpose "
                       "(SCRFD flattens each map as (y, x, anchor))")
        elif op == "Transpose":
            perm = list(g.attr(n, "perm", []))
            if transposed or perm not in perms:
                g.fail(f"{what}: {node_label(n)} with perm {perm}; SCRFD has one Transpose "
                       f"{' or '.join(map(str, perms))} (NCHW -> NHWC)")
            transposed = True
        elif op == "Sigmoid":
            sigmoids += 1
        elif op == "Mul" and g.scalar_operand(n) is not None:
            if kind != "bbox" or scale is not None:
                g.fail(f"{what}: {node_label(n)} multiplies by a constant; SCRFD scales only its box output, once")
            t, scale = g.scalar_operand(n)
            continue
        else:
            g.fail(f"{what}: {node_label(n)} is not part of SCRFD's output layout (Conv -> [Mul by the box scale] -> "
                   "Transpose -> Reshape [-> Sigmoid for scores])")
        t = n.input[0]
    if not transposed:
        g.fail(f"{what}: no NCHW -> NHWC Transpose between {node_label(n)} and the output")
    if sigmoids != (1 if kind == "score" else 0):
        g.fail(f"{what}: {sigmoids} Sigmoid node(s) on the way from {node_label(n)}; SCRFD has one on scores, none on "
               "boxes and keypoints")
    conv = g.conv(n, what)
    expect = NUM_ANCHORS * CHANNELS[kind]
    if conv.cout != expect or conv.kernel != 3 or conv.stride != 1 or conv.group != 1:
        g.fail(f"{what} comes from {conv.label} ({conv.cout} channels, {conv.kernel}x{conv.kernel}, stride {conv.stride}, "
               f"groups {conv.group}); a {kind} predictor of SCRFD is a 3x3 conv with {expect} channels "
               f"({NUM_ANCHORS} anchors x {CHANNELS[kind]})")
    return conv, scale


# ------------------------------------------------------------------------------------------------
# head


def _tower(g: Graph, feat: str, level: int) -> Tuple[List[ConvUnit], str]:
    """The tower convs feeding the predictors of ``level`` (in forward order) and the neck tensor below."""
    units: List[ConvUnit] = []
    t = g.skip_identity(feat)
    while (n := g.prod(t)) is not None and n.op_type == "Relu":
        u = g.conv_unit(t, relu=True, what=f"head tower of stride {STRIDES[level]}")
        units.insert(0, u)
        t = g.skip_identity(u.input)
    return units, t


def _check_tower(g: Graph, units: List[ConvUnit], level: int) -> Tuple[bool, Optional[int]]:
    """(depthwise-separable, GroupNorm groups or None for BN folded in)."""
    what = f"head tower of stride {STRIDES[level]}"
    dw = bool(units) and units[0].depthwise
    for i, u in enumerate(units):
        want_dw = dw and i % 2 == 0
        ok = u.stride == 1 and (u.depthwise and u.kernel == 3 if want_dw else u.group == 1 and u.kernel == (1 if dw else 3))
        if not ok:
            g.fail(f"{what}: {u.label} ({u.kernel}x{u.kernel}, groups {u.group}, stride {u.stride}) does not fit a "
                   f"{'depthwise-separable (3x3 depthwise, 1x1)' if dw else '3x3'} tower of stride-1 convs")
    if dw and len(units) % 2:
        g.fail(f"{what}: {len(units)} convs, a depthwise-separable tower has pairs")
    norms = {None if u.norm is None else u.norm.groups for u in units}
    if len(norms) > 1:
        g.fail(f"{what}: mixes GroupNorm and BN-folded convs ({', '.join(u.label for u in units)})")
    for u in units:
        if u.norm is not None and u.bias is not None and np.any(u.bias):
            g.fail(f"{what}: {u.label} has a bias before its GroupNorm; SCRFD's GroupNorm convs have none")
    return dw, (norms.pop() if norms else None)


def _same(a: ConvUnit, b: ConvUnit) -> bool:
    eq = lambda x, y: (x is None and y is None) or (x is not None and y is not None and np.array_equal(x, y))  # noqa: E731
    return (eq(a.weight, b.weight) and eq(a.bias, b.bias)
            and (a.norm is None) == (b.norm is None)
            and (a.norm is None or (np.array_equal(a.norm.gamma, b.norm.gamma) and np.array_equal(a.norm.beta, b.norm.beta))))


# ------------------------------------------------------------------------------------------------
# neck


def _add_inputs(g: Graph, t: str, what: str):
    n = g.prod(g.skip_identity(t))
    if n is None or n.op_type != "Add" or len(n.input) != 2 or any(g.const(i) is not None for i in n.input):
        got = "a graph input" if n is None else node_label(n)
        g.fail(f"{what}: expected the Add of two feature maps, found {got}")
    return [g.skip_identity(i) for i in n.input], n


def _neck_conv(g: Graph, t: str, kernel: int, stride: int, what: str) -> ConvUnit:
    u = g.conv_unit(t, relu=False, what=what)
    if u.kernel != kernel or u.stride != stride or u.group != 1 or u.norm is not None:
        g.fail(f"{what}: {u.label} is {u.kernel}x{u.kernel} stride {u.stride} groups {u.group}"
               f"{' with GroupNorm' if u.norm else ''}; PAFPN has a plain {kernel}x{kernel} stride-{stride} conv here")
    return u


def _top_down(g: Graph, t: str, level: int):
    """``t = lateral(C) + nearest_upsample(next)`` -> (lateral conv, the upsampled tensor)."""
    what = f"PAFPN top-down sum at stride {STRIDES[level]}"
    ins, add = _add_inputs(g, t, what)
    for a, b in (ins, ins[::-1]):
        r = g.prod(b)
        if r is not None and r.op_type in ("Resize", "Upsample"):
            mode = g.attr(r, "mode", b"nearest")
            mode = mode.decode() if isinstance(mode, bytes) else str(mode)
            if mode != "nearest":
                g.fail(f"{what}: {node_label(r)} upsamples with mode {mode!r}; PAFPN uses nearest")
            return _neck_conv(g, a, 1, 1, f"PAFPN lateral conv at stride {STRIDES[level]}"), g.skip_identity(r.input[0])
    g.fail(f"{what}: neither input of {node_label(add)} is a nearest Resize of the coarser level")


def _bottom_up_sum(g: Graph, t: str, level: int, smooth_in: str, down_in: str):
    """``t = smooth(smooth_in) + down(down_in)`` (the down conv has stride 2) -> (smooth, down)."""
    what = f"PAFPN bottom-up sum at stride {STRIDES[level]}"
    ins, add = _add_inputs(g, t, what)

    def reads(tensor, source):
        c = g.prod(tensor)
        return c is not None and c.op_type == "Conv" and g.skip_identity(c.input[0]) == source

    for a, b in (ins, ins[::-1]):
        if reads(a, smooth_in) and reads(b, down_in):  # roles by who feeds whom, then checked
            s = _neck_conv(g, a, 3, 1, f"PAFPN output conv at stride {STRIDES[level]}")
            d = _neck_conv(g, b, 3, 2, f"PAFPN stride-2 down conv into stride {STRIDES[level]}")
            return s, d
    g.fail(f"{what}: {node_label(add)} is not the sum of the 3x3 output conv of this level's top-down map and the "
           "stride-2 conv of the finer level")


def _neck(g: Graph, p: List[str]):
    """PAFPN read from its three outputs (strides 8, 16, 32) -> (convs by role, C3..C5 tensor names)."""
    s0 = _neck_conv(g, p[0], 3, 1, "PAFPN output conv at stride 8")
    lat0, l1 = _top_down(g, s0.input, 0)
    lat1, l2 = _top_down(g, l1, 1)
    lat2 = _neck_conv(g, l2, 1, 1, "PAFPN lateral conv at stride 32")
    bu0 = _neck_conv(g, p[1], 3, 1, "PAFPN bottom-up conv at stride 16")
    s1, d0 = _bottom_up_sum(g, bu0.input, 1, l1, g.skip_identity(p[0]))
    bu1 = _neck_conv(g, p[2], 3, 1, "PAFPN bottom-up conv at stride 32")
    s2, d1 = _bottom_up_sum(g, bu1.input, 2, l2, g.skip_identity(bu0.input))
    convs = {"lateral": [lat0, lat1, lat2], "smooth": [s0, s1, s2], "down": [d0, d1], "bottom_up": [bu0, bu1]}
    return convs, [g.skip_identity(c.input) for c in (lat0, lat1, lat2)]


def _neck_in_order(g: Graph, p: List[str], names) -> tuple:
    """The neck, also saying clearly when the outputs' levels are not in insightface's order."""
    try:
        return _neck(g, p)
    except GraphMismatch as first:
        for perm in itertools.permutations(range(3)):
            if perm == (0, 1, 2):
                continue
            try:
                _neck(g, [p[i] for i in perm])
            except GraphMismatch:
                continue
            levels = ", ".join(f"output #{i} {names[i]!r} comes from the stride-{STRIDES[perm.index(i)]} level"
                               for i in range(3) if perm.index(i) != i)
            g.fail(f"the outputs are not in insightface's order (strides 8, 16, 32 by position): {levels}")
        raise first


# ------------------------------------------------------------------------------------------------
# backbones


def _is_conv_unit_output(g: Graph, t: str) -> bool:
    """Whether ``t`` is a ReLU of a conv (or of its norm), not of a residual Add or a pooling."""
    n = g.prod(t)
    if n is None or n.op_type != "Relu":
        return False
    m = g.prod(g.skip_identity(n.input[0]))
    if m is None:
        return False
    if m.op_type == "Add":  # a GroupNorm pattern ends in an Add too
        try:
            g.conv_unit(t, relu=True, what="")
            return True
        except GraphMismatch:
            return False
    return m.op_type in ("Conv", "BatchNormalization", "GroupNormalization")


def _res_block(g: Graph, y: str, idx: int) -> dict:
    what = f"backbone residual block {idx} (counted from C5)"
    relu = g.prod(y)
    ins, add = _add_inputs(g, relu.input[0], what)
    errors = []
    for main, short in (ins, ins[::-1]):
        try:
            units = [g.conv_unit(main, relu=False, what=f"{what}, main branch")]
            t = g.skip_identity(units[0].input)
            while len(units) < 3 and _is_conv_unit_output(g, t):
                units.insert(0, g.conv_unit(t, relu=True, what=f"{what}, main branch"))
                t = g.skip_identity(units[0].input)
            x = t
            pool, proj = None, None
            short = g.skip_identity(short)
            if short != x:
                proj = g.conv_unit(short, relu=False, what=f"{what}, shortcut")
                src = g.skip_identity(proj.input)
                if src != x:
                    pool = g.prod(src)
                    if pool is None or pool.op_type != "AveragePool" or g.skip_identity(pool.input[0]) != x:
                        g.fail(f"{what}: the shortcut {proj.label} reads neither the block input nor its average pool")
            return {"units": units, "pool": pool, "proj": proj, "x": x, "y": y}
        except GraphMismatch as e:
            errors.append(str(e))
    g.fail(f"{what}: {node_label(add)} is not a residual sum of a conv branch and a shortcut ({errors[0]})")


def _resnet(g: Graph, c: List[str], image: str) -> Tuple[dict, dict]:
    blocks, y = [], c[2]
    while (r := g.prod(y)) is not None and r.op_type == "Relu" and not _is_conv_unit_output(g, y):
        b = _res_block(g, y, len(blocks))
        blocks.insert(0, b)
        y = b["x"]
    mp = g.prod(y)
    if mp is None or mp.op_type != "MaxPool":
        g.fail(f"ResNetV1e: the first residual block reads {y!r}, which is not the stem's max-pool "
               f"({'a graph input' if mp is None else node_label(mp)})")
    if list(g.attr(mp, "kernel_shape", [])) != [2, 2] or list(g.attr(mp, "strides", [1, 1])) != [2, 2] \
            or any(g.attr(mp, "pads", [0, 0, 0, 0])):
        g.fail(f"ResNetV1e stem: {node_label(mp)} is not SCRFD's 2x2 stride-2 max-pool without padding")
    stem = []
    t = g.skip_identity(mp.input[0])
    for _ in range(3):
        stem.insert(0, g.conv_unit(t, relu=True, what="ResNetV1e deep stem"))
        t = g.skip_identity(stem[0].input)
    if t != image:
        g.fail(f"ResNetV1e stem: {stem[0].label} reads {t!r}, not the image input")
    if [u.stride for u in stem] != [2, 1, 1] or any(u.kernel != 3 or u.group != 1 for u in stem) \
            or not (stem[0].cout == stem[1].cout == stem[2].cout // 2):
        g.fail("ResNetV1e stem: not three 3x3 convs of strides 2, 1, 1 and widths s/2, s/2, s "
               f"({', '.join(f'{u.label}: {u.cout}' for u in stem)})")
    # block kinds, strides, stages
    kinds = {len(b["units"]) for b in blocks}
    if not blocks or len(kinds) != 1:
        g.fail(f"ResNetV1e: blocks with {sorted(kinds)} main-branch convs (all basic (2) or all bottleneck (3) expected)")
    kind = "basic" if kinds.pop() == 2 else "bottleneck"
    shape = [3, 3] if kind == "basic" else [1, 3, 1]
    stages: List[List[dict]] = []
    for i, b in enumerate(blocks):
        u = b["units"]
        what = f"ResNetV1e {kind} block {i} ({u[0].label} ...)"
        if [x.kernel for x in u] != shape or any(x.group != 1 for x in u):
            g.fail(f"{what}: kernels {[x.kernel for x in u]}, a {kind} block has {shape}")
        s_at = 0 if kind == "basic" else 1
        stride = u[s_at].stride
        if any(x.stride != 1 for j, x in enumerate(u) if j != s_at):
            g.fail(f"{what}: the stride sits on conv {[x.stride for x in u]}, ResNetV1e puts it on conv {s_at + 1}")
        cin, cout = u[0].cin, u[-1].cout
        if kind == "bottleneck" and cout != 4 * u[0].cout:
            g.fail(f"{what}: {cout} output channels, a bottleneck block has 4 x {u[0].cout}")
        if stride == 2:
            if b["pool"] is None or b["proj"] is None or b["proj"].stride != 1 or b["proj"].kernel != 1:
                g.fail(f"{what}: a stride-2 block of ResNetV1e shortcuts through a 2x2 average pool and a 1x1 conv")
            p = b["pool"]
            if list(g.attr(p, "kernel_shape", [])) != [2, 2] or list(g.attr(p, "strides", [1, 1])) != [2, 2] \
                    or any(g.attr(p, "pads", [0, 0, 0, 0])):
                g.fail(f"{what}: {node_label(p)} is not a 2x2 stride-2 average pool")
        elif b["pool"] is not None or (b["proj"] is None) != (cin == cout):
            g.fail(f"{what}: a stride-1 block of ResNetV1e has a 1x1 projection exactly when its width changes")
        if b["proj"] is not None and (b["proj"].kernel != 1 or b["proj"].stride != 1):
            g.fail(f"{what}: the shortcut {b['proj'].label} is not a stride-1 1x1 conv")
        if stride == 2 or not stages:
            if stride == 2 and not stages:
                g.fail(f"{what}: the first stage of ResNetV1e has stride 1 (the stem's max-pool reduces)")
            stages.append([])
        stages[-1].append(b)
    _check_stage_outputs(g, [s[-1]["y"] for s in stages], c, "ResNetV1e")
    for i, s in enumerate(stages):
        if len({b["units"][0].cout for b in s}) != 1:
            g.fail(f"ResNetV1e stage {i + 1}: blocks of different widths {[b['units'][0].cout for b in s]}")
    cfg = dict(backbone="resnetv1e", block=kind, stem_channels=stem[2].cout,
               stage_planes=tuple(s[0]["units"][0].cout for s in stages), stage_blocks=tuple(len(s) for s in stages))
    return cfg, {"stem": stem, "stages": stages}


def _mobilenet(g: Graph, c: List[str], image: str) -> Tuple[dict, dict]:
    layers, y = [], c[2]
    while True:
        u = g.conv_unit(y, relu=True, what="MobileNetV1")
        if g.skip_identity(u.input) == image:
            stem = u
            break
        pw = u
        dw = g.conv_unit(pw.input, relu=True, what="MobileNetV1 depthwise-separable layer")
        if not (dw.depthwise and dw.kernel == 3 and pw.kernel == 1 and pw.group == 1 and pw.stride == 1):
            g.fail(f"MobileNetV1: {dw.label} -> {pw.label} is not a 3x3 depthwise conv followed by a 1x1 conv")
        layers.insert(0, (dw, pw))
        y = g.skip_identity(dw.input)
    if stem.kernel != 3 or stem.stride != 2 or stem.group != 1:
        g.fail(f"MobileNetV1 stem: {stem.label} is not a 3x3 stride-2 conv")
    if not layers or layers[0][0].stride != 1:
        g.fail("MobileNetV1: the stem's depthwise-separable layer (stride 1) is missing")
    stages: List[list] = []
    for dw, pw in layers[1:]:
        if dw.stride == 2:
            stages.append([])
        elif not stages:
            g.fail(f"MobileNetV1: {dw.label} starts a stage with stride 1 (SCRFD's stages start with stride 2)")
        stages[-1].append((dw, pw))
    _check_stage_outputs(g, [s[-1][1].output for s in stages], c, "MobileNetV1")
    planes = [stem.cout, layers[0][1].cout] + [s[0][1].cout for s in stages]
    for i, s in enumerate(stages):
        if len({pw.cout for _, pw in s}) != 1:
            g.fail(f"MobileNetV1 stage {i + 1}: layers of different widths {[pw.cout for _, pw in s]}")
    cfg = dict(backbone="mobilenetv1", stage_planes=tuple(planes), stage_blocks=tuple(len(s) for s in stages))
    return cfg, {"stem": stem, "stem_dw": layers[0], "stages": stages}


def _check_stage_outputs(g: Graph, outs: List[str], c: List[str], name: str) -> None:
    if len(outs) != 4:
        g.fail(f"{name}: {len(outs)} stages between the stem and C5, SCRFD's backbones have 4 (C2..C5)")
    for i in range(2):
        if g.skip_identity(outs[i + 1]) != c[i]:
            g.fail(f"{name}: the neck's lateral conv at stride {STRIDES[i]} reads {c[i]!r}, not the output of stage "
                   f"{i + 2} (C{i + 3}, {outs[i + 1]!r})")


# ------------------------------------------------------------------------------------------------
# the whole file


def _analyse(g: Graph) -> _Parsed:
    layout = read_layout(g)
    n_kinds = 3 if layout.use_kps else 2
    preds: List[Dict[str, ConvUnit]] = [{} for _ in STRIDES]
    scales: List[Optional[float]] = [None] * 3
    for i in range(3 * n_kinds):
        conv, scale = _output_chain(g, i, layout.batched)
        preds[i % 3][KINDS[i // 3]] = conv
        if i // 3 == 1:
            scales[i % 3] = scale
    feats = []
    for lvl, p in enumerate(preds):
        f = g.skip_identity(p["score"].input)
        for k, conv in p.items():
            if g.skip_identity(conv.input) != f:
                g.fail(f"the {k} predictor {conv.label} at stride {STRIDES[lvl]} reads {conv.input!r}, the score "
                       f"predictor {p['score'].label} reads {f!r}: SCRFD's predictors of a level share one tower")
        feats.append(f)
    towers, necks = [], []
    for lvl, f in enumerate(feats):
        units, p = _tower(g, f, lvl)
        towers.append(units)
        necks.append(p)
    checks = [_check_tower(g, t, lvl) for lvl, t in enumerate(towers)]
    shapes = [[(u.cout, u.cin, u.kernel, u.group) for u in t] for t in towers]
    if len({str(s) for s in shapes}) != 1 or len(set(checks)) != 1:
        g.fail(f"the head towers of the three levels differ ({'; '.join(str(s) for s in shapes)})")
    dw, groups = checks[0]
    neck, c = _neck_in_order(g, necks, layout.output_names)
    image = layout.input_name
    first = g.prod(c[2])
    if first is not None and first.op_type == "Relu" and not _is_conv_unit_output(g, c[2]):
        bcfg, backbone = _resnet(g, c, image)
    else:
        bcfg, backbone = _mobilenet(g, c, image)
    # every conv of the file must have found its place
    placed = {id(u.node) for u in _all_units(backbone, neck, towers, preds)}
    extra = [n for n in g.nodes if n.op_type == "Conv" and id(n) not in placed]
    if extra:
        g.fail(f"{len(extra)} conv(s) outside the recognised SCRFD structure, first {node_label(extra[0])}")
    shared = all(_same(a, b) for lvl in (1, 2) for a, b in zip(towers[0], towers[lvl])) and all(
        _same(preds[0][k], preds[lvl][k]) for lvl in (1, 2) for k in preds[0])
    stacked = len(towers[0]) // 2 if dw else len(towers[0])
    neck_ch = neck["lateral"][0].cout
    cfg = dict(bcfg, neck_channels=neck_ch, stacked_convs=stacked,
               feat_channels=towers[0][-1].cout if towers[0] else neck_ch,
               norm="bn" if groups is None else "gn", gn_groups=groups or 16, dw_conv=dw, shared_head=shared,
               use_kps=layout.use_kps, use_scale=any(s is not None for s in scales), fused=True)
    return _Parsed(cfg, backbone, neck, towers, preds, scales, layout)


def _all_units(backbone, neck, towers, preds):
    out = []
    if "stem_dw" in backbone:
        out += [backbone["stem"], *backbone["stem_dw"]] + [u for s in backbone["stages"] for pair in s for u in pair]
    else:
        out += list(backbone["stem"])
        for s in backbone["stages"]:
            for b in s:
                out += b["units"] + ([b["proj"]] if b["proj"] is not None else [])
    out += [u for v in neck.values() for u in v]
    out += [u for t in towers for u in t] + [u for p in preds for u in p.values()]
    return out


def _canonical(cfg: DetectorConfig) -> tuple:
    """The fields that decide the modules (name, BN folding and an unused GN group count aside)."""
    d = dataclasses.asdict(cfg)
    d.update(name="", fused=False, gn_groups=cfg.gn_groups if cfg.norm == "gn" else 0,
             feat_channels=cfg.feat_channels if cfg.stacked_convs else 0)
    return tuple(sorted(d.items()))


def _config(parsed: _Parsed) -> DetectorConfig:
    config = DetectorConfig(name="scrfd-onnx", **parsed.cfg)
    for pname, p in presets.items():
        if isinstance(p, DetectorConfig) and _canonical(p) == _canonical(config):
            return config.replace(name=pname)
    return config


# ------------------------------------------------------------------------------------------------
# weights


def _put_conv(path: str, m: nn.Conv2d, u: ConvUnit) -> None:
    if tuple(m.weight.shape) != tuple(u.weight.shape) or m.groups != u.group or m.stride[0] != u.stride \
            or m.padding[0] != u.pad:
        raise ValueError(f"{path}: {u.label} (weight {tuple(u.weight.shape)}, stride {u.stride}, pad {u.pad}, groups "
                         f"{u.group}) does not fit module {tuple(m.weight.shape)} stride {m.stride[0]} pad "
                         f"{m.padding[0]} groups {m.groups}")
    m.weight.copy_(torch.tensor(u.weight))
    if m.bias is not None:
        m.bias.copy_(torch.tensor(u.bias) if u.bias is not None else torch.zeros_like(m.bias))
    elif u.bias is not None and np.any(u.bias):
        raise ValueError(f"{path}: {u.label} has a bias where the model has none")


def _put_conv_norm(path: str, cn: nn.Module, u: ConvUnit) -> None:
    """A :class:`ConvNorm` (conv, norm or Identity, ReLU) from a unit."""
    _put_conv(path, cn[0], u)
    if u.norm is not None:
        gn = cn[1]
        if not isinstance(gn, nn.GroupNorm) or gn.num_groups != u.norm.groups:
            raise ValueError(f"{path}: GroupNorm({u.norm.groups}) after {u.label} does not fit module {gn}")
        gn.weight.copy_(torch.tensor(u.norm.gamma))
        gn.bias.copy_(torch.tensor(u.norm.beta))
        gn.eps = u.norm.eps


def _load(model: SCRFD, parsed: _Parsed, path: str) -> None:
    bb, cfg = model.backbone, model.config
    b = parsed.backbone
    if cfg.backbone == "resnetv1e":
        for m, u in zip(bb.stem, b["stem"]):
            _put_conv_norm(path, m, u)
        for stage, blocks in zip(bb.stages, b["stages"]):
            for block, parts in zip(stage, blocks):
                convs = [block.conv1, block.conv2] + ([block.conv3] if cfg.block == "bottleneck" else [])
                for m, u in zip(convs, parts["units"]):
                    _put_conv_norm(path, m, u)
                if (block.shortcut is None) != (parts["proj"] is None):
                    raise ValueError(f"{path}: the shortcut of {parts['units'][0].label}'s block does not fit the model")
                if parts["proj"] is not None:
                    _put_conv_norm(path, block.shortcut[-1], parts["proj"])
    else:
        _put_conv_norm(path, bb.stem[0], b["stem"])
        for m, u in zip(bb.stem[1], b["stem_dw"]):
            _put_conv_norm(path, m, u)
        for stage, layers in zip(bb.stages, b["stages"]):
            for layer, pair in zip(stage, layers):
                for m, u in zip(layer, pair):
                    _put_conv_norm(path, m, u)
    for role, units in parsed.neck.items():
        for m, u in zip(getattr(model.neck, role), units):
            _put_conv(path, m, u)
    head = model.head
    for lvl in range(len(head.branches)):
        br = head.branches[lvl]
        tower = parsed.towers[lvl]
        mods = [cn for t in br.tower for cn in (t if cfg.dw_conv else [t])]
        for m, u in zip(mods, tower):
            _put_conv_norm(path, m, u)
        for k, m in (("score", br.cls), ("bbox", br.reg), ("kps", br.kps)):
            if m is not None:
                _put_conv(path, m, parsed.predictors[lvl][k])
    if head.scales is not None:
        for s, v in zip(head.scales, parsed.scales):
            s.scale.fill_(1.0 if v is None else v)


def read_scrfd_onnx(path) -> Tuple[DetectorConfig, OnnxLayout]:
    """(the :class:`DetectorConfig` (``fused=True``), the :class:`OnnxLayout`) of an insightface SCRFD
    ONNX file, read from its graph (module doc); ValueError naming what did not fit otherwise."""
    parsed = _analyse(load_graph(path))
    return _config(parsed), parsed.layout


def recognise(path) -> DetectorConfig:
    """The :class:`DetectorConfig` (``fused=True``) of an insightface SCRFD ONNX file."""
    return read_scrfd_onnx(path)[0]


def load_scrfd_onnx(path, expect: Optional[str] = None) -> SCRFD:
    """Build the pyddsar model of an insightface SCRFD ONNX file and load its weights (eval mode).

    ``expect``: a preset name the file must match (e.g. ``"scrfd-2.5g-kps"``); a file for another
    configuration raises ValueError. The file's :class:`OnnxLayout` is kept as ``model.onnx_layout``.
    """
    g = load_graph(path)
    parsed = _analyse(g)
    config = _config(parsed)
    if expect is not None:
        if expect not in presets:
            raise ValueError(f"unknown preset {expect!r}; use one of {', '.join(presets)}")
        if config.name != expect:
            raise ValueError(f"{path} holds weights for {config.name!r} ({describe(config)}), not for {expect!r}")
    model = SCRFD(config)
    with torch.no_grad():
        _load(model, parsed, str(path))
    model.onnx_layout = parsed.layout
    return model.eval()


def describe(c: DetectorConfig) -> str:
    """A one-line summary of an SCRFD config (for messages)."""
    bb = f"{c.backbone} {c.block}".strip()
    norm = f"GN{c.gn_groups}" if c.norm == "gn" else "BN"
    return (f"{bb} planes {list(c.stage_planes)} blocks {list(c.stage_blocks)}, neck {c.neck_channels}, "
            f"head {c.stacked_convs}x{c.feat_channels}{' dw' if c.dw_conv else ''} {norm} "
            f"{'shared' if c.shared_head else 'per level'}, kps {c.use_kps}, scale {c.use_scale}")


__all__ = ["OnnxLayout", "read_layout", "read_scrfd_onnx", "recognise", "load_scrfd_onnx", "describe", "Norm"]
