"""pyddsar.models.onnx_proto (ONNX reading without importing the onnx package) gives what onnx's own
helpers give: tensors of every type it decodes, stored as raw bytes or in the typed fields, and
node attributes."""

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
from onnx import helper, numpy_helper  # noqa: E402

from pyddsar.models import onnx_proto  # noqa: E402

DTYPES = [np.float32, np.uint8, np.int8, np.uint16, np.int16, np.int32, np.int64, np.bool_, np.float16, np.float64,
          np.uint32, np.uint64]


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("raw", [True, False])
def test_to_array_matches_numpy_helper(dtype, raw):
    rng = np.random.default_rng(0)
    a = (rng.random((2, 3, 4)) * 100).astype(dtype)
    if raw:
        t = numpy_helper.from_array(a, "t")
    else:  # the typed repeated fields (int32_data, float_data, ...), as some exporters write
        t = helper.make_tensor("t", helper.np_dtype_to_tensor_dtype(a.dtype), a.shape, a.ravel().tolist())
    got, want = onnx_proto.to_array(t), numpy_helper.to_array(t)
    assert got.dtype == want.dtype and got.shape == want.shape
    np.testing.assert_array_equal(got, want)


def test_attribute_values_match_onnx_helper():
    node = helper.make_node("Conv", ["x", "w"], ["y"], kernel_shape=[3, 3], group=2, alpha=0.5, mode="edge",
                            scales=[1.0, 2.0], names=["a", "b"],
                            value=numpy_helper.from_array(np.arange(6, dtype=np.float32).reshape(2, 3)))
    for a in node.attribute:
        got, want = onnx_proto.attribute_value(a), helper.get_attribute_value(a)
        if isinstance(want, onnx.TensorProto):
            np.testing.assert_array_equal(got, numpy_helper.to_array(want))
        else:
            assert got == want, a.name


def test_load_model_and_is_onnx(tmp_path):
    x = helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [1, 2])
    y = helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [1, 2])
    graph = helper.make_graph([helper.make_node("Relu", ["x"], ["y"])], "g", [x], [y])
    path = tmp_path / "m.onnx"
    onnx.save(helper.make_model(graph), str(path))
    m = onnx_proto.read_model_proto(str(path))
    assert [n.op_type for n in m.graph.node] == ["Relu"] and onnx_proto.is_onnx(str(path))
    (tmp_path / "junk.onnx").write_bytes(b"not a protobuf \x00\xff")
    assert not onnx_proto.is_onnx(str(tmp_path / "junk.onnx"))
