"""CUDA fails safe: the kernels' runtime is checked against the driver and the devices once, and when
they cannot run, pyddsar's ops take CUDA tensors to the CPU kernels with one warning
(PYDDSAR_CUDA=strict: a clear error). The machines of CI have no GPU, so the checks are fed
versions here; the CUDA tests themselves run where a GPU is lent (tests/test_ops_*.py)."""

import warnings

import pytest

torch = pytest.importorskip("torch")

import importlib  # noqa: E402

from pyddsar import ops  # noqa: E402

backends = importlib.import_module("pyddsar.backends")  # the module (pyddsar.backends is also a function)


@pytest.fixture
def status(monkeypatch):
    def set_to(built, runtime, driver, devices):
        backends.cuda_status.cache_clear()
        monkeypatch.setattr(backends, "has_cuda", lambda: built)
        monkeypatch.setattr(backends._core, "cuda_versions", lambda: (runtime, driver))
        monkeypatch.setattr(backends, "cuda_device_count", lambda: devices)
        monkeypatch.setattr(ops, "_warned_cpu_fallback", False)
        return backends.cuda_status()

    yield set_to
    backends.cuda_status.cache_clear()


def test_the_driver_must_be_as_new_as_the_kernels_runtime(status):
    s = status(True, 13000, 12040, 1)
    assert not s.usable and "CUDA 12.4" in s.reason and "CUDA 13.0" in s.reason
    assert status(True, 13000, 13000, 1).usable
    assert status(True, 13000, 13020, 0).reason == "the CUDA runtime sees no GPU"
    assert "no CUDA driver" in status(True, 13000, 0, 0).reason
    assert "no CUDA kernels" in status(False, 0, 0, 0).reason


def test_ops_fall_back_to_the_cpu_once_warned_or_refuse_when_strict(status, monkeypatch):
    status(True, 13000, 12040, 1)
    with pytest.warns(RuntimeWarning, match="run CUDA tensors on the CPU kernels"):
        assert not ops._cuda_runs()
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # one warning per process, not one per call
        assert not ops._cuda_runs()
    monkeypatch.setenv("PYDDSAR_CUDA", "strict")
    with pytest.raises(ValueError, match="CUDA 12.4.*PYDDSAR_CUDA=strict"):
        ops._cuda_runs()


def test_the_fallback_runs_the_cpu_kernel_and_returns_to_the_device(status, monkeypatch):
    # no GPU here: the tensors' "CUDA device" is faked for the first dispatch, which must then move the
    # arguments to the CPU, run the kernel there and move the result to that device
    status(True, 13000, 12040, 1)
    seen = iter([torch.device("cpu")])  # stands for cuda:0
    monkeypatch.setattr(ops, "_cuda_device", lambda args: next(seen, None))
    boxes = torch.tensor([[0.0, 0, 10, 10], [1, 1, 11, 11], [50, 50, 60, 60]])
    scores = torch.tensor([0.9, 0.8, 0.7])
    with pytest.warns(RuntimeWarning):
        keep = ops.nms(boxes, scores, 0.5)
    assert keep.tolist() == [0, 2]
