"""Read ONNX files without importing the ``onnx`` package.

``import onnx`` costs about 0.5 s (its ``ml_dtypes`` dependency alone 0.45 s here), a quarter of
``pyddsar detect IMAGE``. Reading a model needs only the protobuf classes, which ``onnx`` ships as
``onnx/onnx_ml_pb2.py`` (protobuf code, no other import): that file is loaded on its own, and
tensors and attributes are decoded here. Anything this reader does not cover (external data, exotic
tensor types) falls back to the ``onnx`` package, so the result is the same either way.
"""

from __future__ import annotations

import importlib.util
import os

import numpy as np

_PB2 = None

# TensorProto.DataType -> (numpy dtype, the repeated field holding it when there is no raw_data)
_TYPES = {
    1: (np.float32, "float_data"), 2: (np.uint8, "int32_data"), 3: (np.int8, "int32_data"),
    4: (np.uint16, "int32_data"), 5: (np.int16, "int32_data"), 6: (np.int32, "int32_data"),
    7: (np.int64, "int64_data"), 9: (np.bool_, "int32_data"), 10: (np.float16, "int32_data"),
    11: (np.float64, "double_data"), 12: (np.uint32, "uint64_data"), 13: (np.uint64, "uint64_data"),
}


def _pb2():
    """onnx's generated protobuf module, loaded without running ``onnx/__init__.py``."""
    global _PB2
    if _PB2 is None:
        spec = importlib.util.find_spec("onnx")
        if spec is None or not spec.submodule_search_locations:
            raise ValueError("reading ONNX files needs the 'onnx' package (pip install onnx)")
        path = os.path.join(list(spec.submodule_search_locations)[0], "onnx_ml_pb2.py")
        s = importlib.util.spec_from_file_location("_pyddsar_onnx_ml_pb2", path)
        mod = importlib.util.module_from_spec(s)
        s.loader.exec_module(mod)
        _PB2 = mod
    return _PB2


def read_model_proto(path):
    """The ModelProto of ``path``. Raises whatever protobuf / onnx raise for a file that is not ONNX."""
    try:
        model = _pb2().ModelProto()
    except Exception:  # an onnx build without the plain protobuf module
        import onnx

        return onnx.load(os.fspath(path))
    with open(path, "rb") as f:
        model.ParseFromString(f.read())
    if any(t.data_location == 1 for t in model.graph.initializer):  # external data: onnx knows where
        import onnx

        return onnx.load(os.fspath(path))
    return model


def is_onnx(path) -> bool:
    """Whether ``path`` parses as an ONNX model with a graph (reads the file, never raises)."""
    try:
        m = read_model_proto(path)
    except Exception:
        return False
    return len(m.graph.node) > 0 and m.ir_version > 0


def to_array(t) -> np.ndarray:
    """A TensorProto as a numpy array (the ``onnx.numpy_helper.to_array`` of the types SCRFD files use)."""
    if t.data_type not in _TYPES or t.data_location == 1:
        from onnx import numpy_helper

        return numpy_helper.to_array(t)
    dtype, field = _TYPES[t.data_type]
    dims = tuple(int(d) for d in t.dims)
    if t.raw_data:
        return np.frombuffer(t.raw_data, dtype=np.dtype(dtype).newbyteorder("<")).astype(dtype).reshape(dims)
    values = getattr(t, field)
    if t.data_type == 10:  # float16 stored as its bits in int32_data
        return np.asarray(values, np.uint16).view(np.float16).reshape(dims)
    return np.asarray(values, dtype).reshape(dims)


def attribute_value(a):
    """An AttributeProto's value (``onnx.helper.get_attribute_value`` for the kinds nodes here carry)."""
    kinds = {1: "f", 2: "i", 3: "s", 6: "floats", 7: "ints", 8: "strings"}
    if a.type == 4:
        return to_array(a.t)
    if a.type in kinds:
        v = getattr(a, kinds[a.type])
        return list(v) if a.type in (6, 7, 8) else v
    import onnx

    return onnx.helper.get_attribute_value(a)
