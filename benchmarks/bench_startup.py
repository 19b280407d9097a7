"""Start-up cost in fresh processes (pytest-benchmark): `python -m pytest benchmarks/bench_startup.py`.

- the first pyddsar op (NMS on 3 boxes) after ``import torch, pyddsar.ops``, timed inside the process;
- ``pyddsar detect IMAGE --weights scrfd_2.5g_bnkps.onnx`` from the shell, the whole process (python
  start, imports, ONNX import, one 640x640 detection), and ``import torch`` alone for scale.

Each round is a new interpreter (subprocess), so nothing is warm but the OS file cache. Figures:
docs/benchmarks.md (start-up).
"""

import os
import subprocess
import sys

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DATA = os.environ.get("PYDDSAR_DATA") or os.path.join(REPO, "..", "shared", "data")
ONNX = os.path.join(DATA, "models", "scrfd_2.5g_bnkps.onnx")
PHOTO = os.path.join(DATA, "images", "crowd_cheering.jpg")
ENV = dict(os.environ, PYTHONPATH=REPO)

FIRST_OP = """
import time, torch, pyddsar.ops as ops
b = torch.tensor([[0., 0, 10, 10], [1, 1, 11, 11], [50, 50, 60, 60]]); s = torch.tensor([0.9, 0.8, 0.7])
t = time.perf_counter(); ops.nms(b, s, 0.5); print(time.perf_counter() - t)
"""


def _run(args):
    subprocess.run([sys.executable, *args], check=True, env=ENV, cwd="/", stdout=subprocess.PIPE,
                   stderr=subprocess.PIPE)


def test_first_op_in_a_fresh_process(benchmark):
    times = []

    def once():
        out = subprocess.run([sys.executable, "-c", FIRST_OP], check=True, env=ENV, cwd="/", capture_output=True,
                             text=True).stdout
        times.append(float(out.split()[-1]))

    benchmark.pedantic(once, rounds=5, iterations=1)
    benchmark.extra_info["first_op_s"] = sorted(times)


def test_import_torch(benchmark):
    benchmark.pedantic(_run, args=(["-c", "import torch"],), rounds=5, iterations=1)


@pytest.mark.skipif(not (os.path.isfile(ONNX) and os.path.isfile(PHOTO)), reason=f"shared data not found at {DATA}")
def test_detect_one_image_from_the_shell(benchmark):
    benchmark.pedantic(_run, args=(["-m", "pyddsar", "detect", PHOTO, "--weights", ONNX, "--no-progress"],),
                       rounds=5, iterations=1)
