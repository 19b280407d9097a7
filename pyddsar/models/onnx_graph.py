"""A read-only view of an ONNX graph for walking it by structure (who feeds whom).

:class:`Graph` holds the nodes, the constants (initializers, ``Constant`` nodes and ``Identity`` of a
constant), the producer of every tensor and its consumers. :meth:`Graph.conv_unit` reads one
"conv [+ norm] [+ ReLU]" unit backwards from its output tensor, folding an unfolded
``BatchNormalization`` into the conv and recognising GroupNorm in both of its ONNX forms (a
``GroupNormalization`` node, or torch's ``Reshape -> InstanceNormalization -> Reshape -> Mul -> Add``).
Every mismatch raises :class:`GraphMismatch` (a ValueError) naming the node that did not fit.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Dict, List, Optional

import numpy as np

from .onnx_proto import attribute_value, read_model_proto, to_array


class GraphMismatch(ValueError):
    """The graph does not have the structure being read; the message names the node or tensor."""


def node_label(node) -> str:
    """``Conv 'name'`` (or the first output when the node has no name), for error messages."""
    return f"{node.op_type} {node.name or node.output[0]!r}"


@dataclass
class Norm:
    """A GroupNorm after a conv: ``groups``, per-channel ``gamma``/``beta`` and ``eps``."""

    groups: int
    gamma: np.ndarray
    beta: np.ndarray
    eps: float
    nodes: tuple  # the ONNX nodes of the pattern (for messages)


@dataclass
class ConvUnit:
    """One conv, its weights (BatchNorm folded in when the file had it apart), an optional GroupNorm
    and whether a ReLU follows. ``input`` / ``output`` are tensor names (``output`` after the ReLU)."""

    node: object
    weight: np.ndarray
    bias: Optional[np.ndarray]
    group: int
    stride: int
    kernel: int
    pad: int
    norm: Optional[Norm]
    relu: bool
    input: str
    output: str

    @property
    def cout(self) -> int:
        return int(self.weight.shape[0])

    @property
    def cin(self) -> int:
        return int(self.weight.shape[1]) * self.group

    @property
    def depthwise(self) -> bool:
        return self.group > 1 and self.group == self.cin == self.cout

    @property
    def label(self) -> str:
        return node_label(self.node)


class Graph:
    """Nodes, constants, producers and consumers of a loaded ONNX model (see the module doc)."""

    def __init__(self, model, path: str = "model"):
        self.model = model
        self.path = path
        g = model.graph
        self.nodes = list(g.node)
        self.opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 0)
        self.consts: Dict[str, np.ndarray] = {t.name: to_array(t) for t in g.initializer}
        for n in self.nodes:  # constants some exporters emit as nodes
            if n.op_type == "Constant" and n.attribute and n.attribute[0].name == "value":
                self.consts[n.output[0]] = to_array(n.attribute[0].t)
            elif n.op_type == "Identity" and n.input and n.input[0] in self.consts:
                self.consts[n.output[0]] = self.consts[n.input[0]]
        self.producer = {o: n for n in self.nodes for o in n.output}
        self.consumers: Dict[str, list] = {}
        for n in self.nodes:
            for i in n.input:
                self.consumers.setdefault(i, []).append(n)
        inits = {t.name for t in g.initializer}
        self.inputs = [i for i in g.input if i.name not in inits]
        self.outputs = list(g.output)

    # -- small readers ---------------------------------------------------------------------------
    @staticmethod
    def attr(node, name, default=None):
        for a in node.attribute:
            if a.name == name:
                return attribute_value(a)
        return default

    def fail(self, message: str):
        raise GraphMismatch(f"{self.path}: {message}")

    def prod(self, tensor: str):
        """The node producing ``tensor`` (None for a graph input or a constant)."""
        return self.producer.get(tensor)

    def const(self, tensor: str) -> Optional[np.ndarray]:
        return self.consts.get(tensor)

    def scalar_operand(self, node) -> Optional[tuple]:
        """For a binary node with one scalar constant operand: (the other input, the scalar)."""
        if len(node.input) != 2:
            return None
        for k in (0, 1):
            c = self.const(node.input[k])
            if c is not None and np.asarray(c).size == 1:
                return node.input[1 - k], float(np.asarray(c).reshape(()))
        return None

    def dims(self, value_info) -> Optional[List]:
        """The dims of a graph input/output: ints, strings for named dynamic axes, None when unset."""
        t = value_info.type.tensor_type
        if not t.HasField("shape"):
            return None
        return [d.dim_value if d.HasField("dim_value") else (d.dim_param or None) for d in t.shape.dim]

    def skip_identity(self, tensor: str) -> str:
        n = self.prod(tensor)
        while n is not None and n.op_type == "Identity":
            tensor = n.input[0]
            n = self.prod(tensor)
        return tensor

    # -- conv units ------------------------------------------------------------------------------
    def conv(self, node, what: str) -> ConvUnit:
        """The conv ``node`` as a :class:`ConvUnit` (no norm, no ReLU yet), its attributes checked."""
        if node is None or node.op_type != "Conv":
            got = "a graph input or constant" if node is None else node_label(node)
            self.fail(f"{what}: expected a Conv, found {got}")
        w = self.const(node.input[1]) if len(node.input) > 1 else None
        if w is None or np.asarray(w).ndim != 4:
            self.fail(f"{what}: {node_label(node)} has no constant 4-d weight")
        b = self.const(node.input[2]) if len(node.input) > 2 and node.input[2] else None
        if len(node.input) > 2 and node.input[2] and b is None:
            self.fail(f"{what}: {node_label(node)} has a bias that is not a constant")
        kh, kw = int(w.shape[2]), int(w.shape[3])
        strides = list(self.attr(node, "strides", [1, 1]))
        dil = list(self.attr(node, "dilations", [1, 1]))
        pads = list(self.attr(node, "pads", [0, 0, 0, 0]))
        auto = self.attr(node, "auto_pad", b"NOTSET")
        auto = auto.decode() if isinstance(auto, bytes) else str(auto)
        if kh != kw or kh not in (1, 3):
            self.fail(f"{what}: {node_label(node)} has a {kh}x{kw} kernel (SCRFD uses 1x1 and 3x3)")
        if dil != [1, 1]:
            self.fail(f"{what}: {node_label(node)} has dilations {dil} (SCRFD uses none)")
        if len(set(strides)) != 1 or strides[0] not in (1, 2):
            self.fail(f"{what}: {node_label(node)} has strides {strides} (1 or 2 on both axes expected)")
        if auto not in ("NOTSET", ""):
            if auto in ("SAME_UPPER", "SAME_LOWER") and strides[0] == 1:
                pads = [kh // 2] * 4
            else:
                self.fail(f"{what}: {node_label(node)} pads with auto_pad={auto} (explicit pads of k // 2 expected)")
        if pads != [kh // 2] * 4:
            self.fail(f"{what}: {node_label(node)} has pads {pads}, a {kh}x{kh} conv of SCRFD pads {kh // 2} on each side")
        group = int(self.attr(node, "group", 1))
        return ConvUnit(node, np.asarray(w, np.float32), None if b is None else np.asarray(b, np.float32).reshape(-1),
                        group, int(strides[0]), kh, kh // 2, None, False, node.input[0], node.output[0])

    def conv_unit(self, tensor: str, relu: bool, what: str) -> ConvUnit:
        """Read ``tensor = [ReLU](norm(Conv(x)))`` backwards. ``relu``: a ReLU must end the unit
        (True) or must not (False). BatchNormalization nodes are folded into the conv's weights."""
        tensor = self.skip_identity(tensor)
        out = tensor
        n = self.prod(tensor)
        if relu:
            if n is None or n.op_type != "Relu":
                got = "a graph input" if n is None else node_label(n)
                self.fail(f"{what}: expected a ReLU, found {got}")
            tensor = self.skip_identity(n.input[0])
            n = self.prod(tensor)
        elif n is not None and n.op_type == "Relu":
            self.fail(f"{what}: {node_label(n)} where SCRFD has no activation")
        norm, bn = None, None
        if n is not None and n.op_type == "BatchNormalization":
            bn = n
            tensor = self.skip_identity(n.input[0])
        elif n is not None and n.op_type == "GroupNormalization":
            norm = self._group_norm_node(n, what)
            tensor = self.skip_identity(n.input[0])
        elif n is not None and n.op_type == "Add":
            norm, tensor = self._group_norm_pattern(n, what)
        unit = self.conv(self.prod(tensor), what)
        unit.relu, unit.output, unit.norm = relu, out, norm
        if bn is not None:
            self._fold_bn(unit, bn, what)
        if norm is not None and norm.gamma.size == norm.groups != unit.cout and norm.nodes[0].op_type == "GroupNormalization" \
                and self.opset < 21 and unit.cout % norm.groups == 0:  # opset 18's form: one scale / bias per group
            rep = unit.cout // norm.groups
            norm.gamma, norm.beta = np.repeat(norm.gamma, rep), np.repeat(norm.beta, rep)
        if norm is not None and norm.gamma.size != unit.cout:
            self.fail(f"{what}: GroupNorm after {unit.label} has {norm.gamma.size} channels, the conv {unit.cout}")
        return unit

    def _fold_bn(self, unit: ConvUnit, bn, what: str) -> None:
        vals = [self.const(i) for i in bn.input[1:5]]
        if len(vals) != 4 or any(v is None for v in vals):
            self.fail(f"{what}: {node_label(bn)} has non-constant parameters")
        gamma, beta, mean, var = (np.asarray(v, np.float64).reshape(-1) for v in vals)
        eps = float(self.attr(bn, "epsilon", 1e-5))
        s = gamma / np.sqrt(var + eps)
        b = unit.bias.astype(np.float64) if unit.bias is not None else np.zeros_like(mean)
        unit.weight = (unit.weight * s[:, None, None, None]).astype(np.float32)
        unit.bias = ((b - mean) * s + beta).astype(np.float32)

    def _group_norm_node(self, n, what: str) -> Norm:
        g = int(self.attr(n, "num_groups", 0))
        scale, bias = self.const(n.input[1]), self.const(n.input[2])
        if g <= 0 or scale is None or bias is None:
            self.fail(f"{what}: {node_label(n)} lacks num_groups or constant scale/bias")
        scale, bias = np.asarray(scale, np.float32).reshape(-1), np.asarray(bias, np.float32).reshape(-1)
        return Norm(g, scale, bias, float(self.attr(n, "epsilon", 1e-5)), (n,))

    def _group_norm_pattern(self, add, what: str):
        """``Add(Mul(Reshape(InstanceNormalization(Reshape(x, [0, G, -1]))), gamma), beta)`` -> (Norm, x)."""
        def bad(reason):
            self.fail(f"{what}: {node_label(add)} is neither a GroupNorm pattern "
                      f"(Reshape -> InstanceNormalization -> Reshape -> Mul -> Add) nor a conv output: {reason}")

        pair = self._const_operand(add)
        if pair is None:
            bad("no constant operand")
        t, beta = pair
        mul = self.prod(self.skip_identity(t))
        if mul is None or mul.op_type != "Mul" or self._const_operand(mul) is None:
            bad("no Mul by a constant before it")
        t, gamma = self._const_operand(mul)
        back = self.prod(self.skip_identity(t))
        if back is None or back.op_type != "Reshape":
            bad("no Reshape before the Mul")
        inorm = self.prod(self.skip_identity(back.input[0]))
        if inorm is None or inorm.op_type != "InstanceNormalization":
            bad("no InstanceNormalization before the Reshape")
        s, b = self.const(inorm.input[1]), self.const(inorm.input[2])
        if s is None or b is None or not np.allclose(s, 1.0) or not np.allclose(b, 0.0):
            bad(f"{node_label(inorm)} has a scale or bias other than ones / zeros")
        split = self.prod(self.skip_identity(inorm.input[0]))
        shape = self.const(split.input[1]) if split is not None and split.op_type == "Reshape" else None
        if shape is None or np.asarray(shape).size != 3:
            bad("the InstanceNormalization input is not a Reshape to [N, groups, -1]")
        groups = int(np.asarray(s).size)
        if int(np.asarray(shape).reshape(-1)[1]) != groups:
            bad(f"the Reshape splits into {int(np.asarray(shape).reshape(-1)[1])} groups, the norm has {groups}")
        gamma, beta = np.asarray(gamma, np.float32), np.asarray(beta, np.float32)
        if gamma.size != beta.size or gamma.squeeze().ndim > 1:
            bad("gamma / beta are not per-channel vectors")
        eps = float(self.attr(inorm, "epsilon", 1e-5))
        return Norm(groups, gamma.reshape(-1), beta.reshape(-1), eps, (split, inorm, back, mul, add)), \
            self.skip_identity(split.input[0])

    def _const_operand(self, node):
        """(the non-constant input, the constant) of a binary node with exactly one constant input."""
        if len(node.input) != 2:
            return None
        a, b = (self.const(i) for i in node.input)
        if (a is None) == (b is None):
            return None
        return (node.input[1], a) if a is not None else (node.input[0], b)


def load_graph(path) -> Graph:
    """Read an ONNX file into a :class:`Graph`; ValueError when it is missing or not ONNX."""
    if not isinstance(path, (str, os.PathLike)) or not os.path.isfile(path):
        raise ValueError(f"ONNX file not found: {path!r}")
    try:
        model = read_model_proto(os.fspath(path))
    except ValueError:
        raise
    except Exception as e:  # onnx raises DecodeError and friends
        raise ValueError(f"{path} is not a readable ONNX model ({type(e).__name__})") from None
    if not len(model.graph.node):
        raise ValueError(f"{path} is not a readable ONNX model (no graph nodes)")
    return Graph(model, os.fspath(path))
