"""Start-up: the first pyddsar op and `pyddsar detect` stay off torch's compiler stack and the `onnx`
package (their import cost 0.9-1.5 s and 0.5 s); the registered ops still serve tracing. Start-up
times are measured in benchmarks/bench_startup.py, not asserted here."""

import json
import os

import numpy as np
import pytest
import torch

from pyddsar import ops
from pyddsar.models import onnx_proto

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DATA = os.environ.get("PYDDSAR_DATA") or os.path.join(REPO, "..", "shared", "data")
ONNX = os.path.join(DATA, "models", "scrfd_2.5g_bnkps.onnx")
PHOTO = os.path.join(DATA, "images", "crowd_cheering.jpg")


def test_first_op_does_not_import_the_compiler(run_python):
    code = ("import sys, torch, pyddsar.ops as ops\n"
            "b = torch.tensor([[0., 0, 10, 10], [1, 1, 11, 11], [50, 50, 60, 60]])\n"
            "k = ops.nms(b, torch.tensor([0.9, 0.8, 0.7]), 0.5)\n"
            "a = ops.anchor_centers([(2, 2)], [8], 2)\n"
            "print(k.tolist(), a.shape[0], 'torch._dynamo' in sys.modules)")
    out = run_python("-c", code).stdout.split()
    assert out == ["[0,", "2]", "8", "False"]


@pytest.mark.skipif(not (os.path.isfile(ONNX) and os.path.isfile(PHOTO)), reason=f"shared data not found at {DATA}")
def test_detect_imports_neither_onnx_nor_the_compiler(run_python):
    code = ("import sys, json\nfrom pyddsar.cli import main\n"
            f"rc = main(['detect', {PHOTO!r}, '--weights', {ONNX!r}, '--json', '--no-progress'])\n"
            "print(json.dumps({'rc': rc, 'onnx': 'onnx' in sys.modules, 'dynamo': 'torch._dynamo' in sys.modules}))")
    lines = run_python("-c", code).stdout.strip().splitlines()
    rec, flags = json.loads(lines[0]), json.loads(lines[-1])
    assert flags == {"rc": 0, "onnx": False, "dynamo": False}
    assert sum(d["score"] >= 0.5 for d in rec["detections"]) == 26


def test_ops_still_dispatch_for_fake_tensors_and_opcheck():
    from torch._subclasses.fake_tensor import FakeTensorMode

    b = torch.tensor([[0.0, 0, 10, 10], [5, 5, 20, 20]])
    with FakeTensorMode() as mode:
        fb = mode.from_tensor(b)
        iou = ops.box_iou(fb, fb)  # the registered fake implementation, not the kernel
        assert type(iou) is not torch.Tensor and tuple(iou.shape) == (2, 2)
    torch.library.opcheck(torch.ops.pyddsar.box_iou.default, (b, b), test_utils=("test_schema", "test_faketensor"))
    np.testing.assert_allclose(ops.box_iou(b, b).numpy(), torch.ops.pyddsar.box_iou(b, b).numpy())


def test_light_onnx_reader_equals_onnx(tmp_path):
    onnx = pytest.importorskip("onnx")
    from onnx import helper, numpy_helper

    arrays = {
        "f32": np.arange(6, dtype=np.float32).reshape(2, 3) / 7, "f16": np.array([1.5, -2.25], np.float16),
        "f64": np.array([[1e-300]], np.float64), "i64": np.array([-3, 2**40], np.int64),
        "i32": np.array([7, -8], np.int32), "u8": np.array([0, 255], np.uint8), "b": np.array([True, False]),
    }
    for name, a in arrays.items():
        for raw in (True, False):
            t = numpy_helper.from_array(a, name)
            if not raw:  # the typed repeated fields instead of raw bytes
                t = helper.make_tensor(name, t.data_type, a.shape, a.flatten().tolist(), raw=False)
            got = onnx_proto.to_array(onnx_proto._pb2().TensorProto.FromString(t.SerializeToString()))
            want = numpy_helper.to_array(t)
            assert got.dtype == want.dtype == a.dtype and np.array_equal(got, want) and np.array_equal(got, a), (name, raw)
    node = helper.make_node("Conv", ["x", "w"], ["y"], strides=[2, 2], group=3, auto_pad="NOTSET", alpha=0.5)
    light = onnx_proto._pb2().NodeProto.FromString(node.SerializeToString())
    assert [onnx_proto.attribute_value(a) for a in light.attribute] == \
        [helper.get_attribute_value(a) for a in node.attribute]
    (tmp_path / "junk.onnx").write_bytes(b"\x08\x01hello")
    (tmp_path / "text.onnx").write_text("not a model")
    assert not onnx_proto.is_onnx(tmp_path / "junk.onnx") and not onnx_proto.is_onnx(tmp_path / "text.onnx")
    if os.path.isfile(ONNX):
        assert onnx_proto.is_onnx(ONNX)
        a, b = onnx_proto.read_model_proto(ONNX), onnx.load(ONNX)
        assert a.SerializeToString() == b.SerializeToString()
