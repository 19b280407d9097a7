"""SCRFD ONNX files in the layouts seen in the wild, made from pyddsar exports by graph surgery.

- ``named``: pyddsar's export as it is (insightface's names score_8 ... kps_32, batch axis, dynamic).
- ``numeric``: the outputs renamed to bare numbers, as in insightface's model packs (det_10g.onnx).
- ``out_k``: the outputs renamed out0 ... out8 (a re-export seen in the wild).
- ``no_batch``: the model packs' older head ending, Transpose [2, 3, 0, 1] -> Reshape [-1, k], outputs
  [N, k] and the input's batch fixed to 1.
- ``fixed``: a fixed 640x640 input (exported with ``dynamic=False``).
- ``group_norm``: torch's GroupNorm pattern (Reshape -> InstanceNormalization -> Reshape -> Mul -> Add)
  replaced by one ``GroupNormalization`` node (opset 21), as newer exporters write it.
- ``reordered``: the same graph with its nodes in another valid topological order (depth-first from
  the last output), so execution order no longer matches the modules' order.
"""

from __future__ import annotations

import copy
import os
import warnings

import numpy as np
import onnx
import torch
from onnx import helper, numpy_helper

from pyddsar.onnx_export import export_onnx

LAYOUTS = ("named", "numeric", "out_k", "no_batch", "fixed")


def randomise(model, seed: int = 0, images=None):
    """Non-trivial BN statistics, norm affines and box scales, so that BN folding, GroupNorm and the
    scales are all exercised (a fresh model has mean 0 / var 1 / scale 1). With ``images`` (a
    preprocessed batch, or a list of them) the BN statistics are measured on them instead, as training would leave them:
    activations then keep a trained model's scale, and no near-constant channel makes a GroupNorm
    amplify float noise (random statistics leave some with a spread of 1e-3)."""
    g = torch.Generator().manual_seed(seed)

    def u(t, lo, hi):
        t.copy_(torch.rand(t.shape, generator=g) * (hi - lo) + lo)

    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, (torch.nn.BatchNorm2d, torch.nn.GroupNorm)):
                # gains under 1: a random net with gains near 1 is chaotic (float32 noise grows layer by
                # layer to 1e-3 in any runtime, against float64), a trained one is not
                u(m.weight, 0.4, 0.8)
                u(m.bias, -0.2, 0.2)
            if isinstance(m, torch.nn.BatchNorm2d):
                u(m.running_mean, -0.2, 0.2)
                u(m.running_var, 0.5, 2.0)
        if model.head.scales is not None:
            for s in model.head.scales:
                u(s.scale, 0.5, 1.5)
        for br in model.head.branches:  # scores spread over (0, 1) instead of the 1 % prior
            br.cls.bias.zero_()
        for m in model.backbone.modules():
            if isinstance(m, torch.nn.Conv2d) and m.groups > 1:
                m.weight.abs_()  # depthwise filters that do not cancel out on flat image regions
        for m in model.modules():  # residual branches small against the identity, as after training
            last = getattr(m, "conv3", None) or getattr(m, "conv2", None)
            if last is not None and isinstance(last[1], torch.nn.BatchNorm2d):
                last[1].weight.mul_(0.25)
        if images is not None:
            bns = [m for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d)]
            for m in bns:
                m.reset_running_stats()
                m.momentum = None  # a cumulative average over the batch
            batches = images if isinstance(images, (list, tuple)) else [images]
            model.train()
            for b in batches:  # a cumulative average over every batch
                model(b)
            for m in bns:
                m.momentum = 0.1
                # no channel amplified more than twice the layer's typical gain: a random depthwise
                # filter that nearly cancels on smooth regions would otherwise multiply float noise
                v = m.running_var
                v.clamp_(min=float(v.median()) / 4)
            # neck outputs of unit spread, as a trained neck feeds its head (a random one gives ~0.03,
            # which the head's norms then amplify 30x, float noise with it)
            model.eval()
            feats = model.backbone(batches[0])[1:]
            neck = model.neck
            for conv, lvl in ((neck.smooth[0], 0), (neck.bottom_up[0], 1), (neck.bottom_up[1], 2)):
                std = float(neck(feats)[lvl].std())
                conv.weight.div_(std)
                conv.bias.div_(std)
    return model.eval()


def export(model, path, layout: str) -> str:
    """Write ``model`` to ``path`` in ``layout`` (module doc)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if layout == "fixed":
            return export_onnx(model, path, dynamic=False, input_size=(640, 640), verify=False)
        export_onnx(model, path, dynamic=True, input_size=(320, 320), verify=False)
    if layout == "named":
        return path
    m = onnx.load(path)
    if layout == "numeric":
        rename_outputs(m, numeric_names(m, len(m.graph.output)))
    elif layout == "out_k":
        rename_outputs(m, [f"out{i}" for i in range(len(m.graph.output))])
    elif layout == "no_batch":
        drop_batch_axis(m)
        rename_outputs(m, numeric_names(m, len(m.graph.output)))
    elif layout == "group_norm":
        to_group_normalization(m)
    elif layout == "reordered":
        reorder_nodes(m)
    else:
        raise ValueError(layout)
    onnx.save(m, path)
    return path


def numeric_names(m, n: int):
    """``n`` bare-number tensor names the graph does not use yet (det_10g.onnx's style)."""
    used = {t for node in m.graph.node for t in list(node.input) + list(node.output)}
    used |= {t.name for t in m.graph.initializer}
    out, k = [], 448
    while len(out) < n:
        if str(k) not in used:
            out.append(str(k))
        k += 23
    return out


def rename_outputs(m, names) -> None:
    old = [o.name for o in m.graph.output]
    mapping = dict(zip(old, names))
    for n in m.graph.node:
        n.output[:] = [mapping.get(o, o) for o in n.output]
        n.input[:] = [mapping.get(i, i) for i in n.input]
    for o, new in zip(m.graph.output, names):
        o.name = new


def _producers(m):
    return {o: n for n in m.graph.node for o in n.output}


def drop_batch_axis(m) -> None:
    """Each output ``... Transpose[0,2,3,1] -> Reshape[B, -1, k] [-> Sigmoid]`` becomes
    ``Transpose[2,3,0,1] -> Reshape[-1, k]``; batch 1 on the input, outputs [N, k]."""
    prod = _producers(m)
    for idx, out in enumerate(m.graph.output):
        k = (1, 4, 10)[idx // 3]
        t = out.name
        while True:
            n = prod[t]
            if n.op_type == "Transpose":
                for a in n.attribute:
                    if a.name == "perm":
                        a.ints[:] = [2, 3, 0, 1]
                break
            if n.op_type == "Reshape":
                name = f"nobatch_shape_{idx}"
                m.graph.initializer.append(numpy_helper.from_array(np.array([-1, k], np.int64), name))
                n.input[1] = name
            t = n.input[0]
        dims = out.type.tensor_type.shape.dim
        del dims[:]
        dims.add().dim_param = f"anchors_{idx}"
        dims.add().dim_value = k
    m.graph.input[0].type.tensor_type.shape.dim[0].dim_value = 1
    _drop_dead(m)


def to_group_normalization(m) -> None:
    """Replace torch's InstanceNormalization GroupNorm pattern by GroupNormalization-21 nodes."""
    prod = _producers(m)
    cons = {}
    for n in m.graph.node:
        for i in n.input:
            cons.setdefault(i, []).append(n)
    inits = {t.name: numpy_helper.to_array(t) for t in m.graph.initializer}
    consts = dict(inits)
    for n in m.graph.node:
        if n.op_type == "Constant":
            consts[n.output[0]] = numpy_helper.to_array(n.attribute[0].t)
        elif n.op_type == "Identity" and n.input[0] in consts:  # torch's deduplicated constants
            consts[n.output[0]] = consts[n.input[0]]
    new_nodes, drop = [], set()
    for n in m.graph.node:
        if n.op_type != "InstanceNormalization":
            continue
        split = prod[n.input[0]]
        back = cons[n.output[0]][0]
        mul = cons[back.output[0]][0]
        add = cons[mul.output[0]][0]
        groups = int(consts[n.input[1]].size)
        gamma = next(consts[i] for i in mul.input if i in consts).reshape(-1)
        beta = next(consts[i] for i in add.input if i in consts).reshape(-1)
        eps = next((a.f for a in n.attribute if a.name == "epsilon"), 1e-5)
        gname, bname = f"{add.output[0]}_gn_scale", f"{add.output[0]}_gn_bias"
        m.graph.initializer.extend([numpy_helper.from_array(gamma.astype(np.float32), gname),
                                    numpy_helper.from_array(beta.astype(np.float32), bname)])
        gn = helper.make_node("GroupNormalization", [split.input[0], gname, bname], [add.output[0]],
                              num_groups=groups, epsilon=eps, name=f"GroupNorm_{len(new_nodes)}")
        new_nodes.append((add, gn))
        drop.update(id(x) for x in (split, n, back, mul, add))
    nodes = []
    repl = {id(a): gn for a, gn in new_nodes}
    for n in m.graph.node:
        if id(n) in repl:
            nodes.append(repl[id(n)])
        elif id(n) not in drop:
            nodes.append(n)
    del m.graph.node[:]
    m.graph.node.extend(nodes)
    _drop_dead(m)
    for o in m.opset_import:
        if o.domain in ("", "ai.onnx"):
            o.version = 21
    m.ir_version = max(m.ir_version, 10)


def reorder_nodes(m) -> None:
    """Nodes in a depth-first order from the last output backwards (still topological)."""
    prod = _producers(m)
    seen, order = set(), []

    def visit(n):
        stack = [(n, False)]
        while stack:
            node, done = stack.pop()
            if done:
                order.append(node)
                continue
            if id(node) in seen:
                continue
            seen.add(id(node))
            stack.append((node, True))
            for i in reversed(list(node.input)):
                p = prod.get(i)
                if p is not None and id(p) not in seen:
                    stack.append((p, False))

    for out in reversed(list(m.graph.output)):
        visit(prod[out.name])
    del m.graph.node[:]
    m.graph.node.extend(order)


def _drop_dead(m) -> None:
    """Remove nodes and initializers no output depends on."""
    prod = _producers(m)
    live, stack = set(), [o.name for o in m.graph.output]
    while stack:
        t = stack.pop()
        n = prod.get(t)
        if n is None or id(n) in live:
            continue
        live.add(id(n))
        stack.extend(n.input)
    kept = [n for n in m.graph.node if id(n) in live]
    used = {i for n in kept for i in n.input}
    inits = [t for t in m.graph.initializer if t.name in used]
    del m.graph.node[:]
    m.graph.node.extend(kept)
    del m.graph.initializer[:]
    m.graph.initializer.extend(inits)


def copy_model(m):
    return copy.deepcopy(m)


def data_dir():
    from _shared_data import data_dir as shared

    return shared()
