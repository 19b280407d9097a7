"""The training loop on tiny synthetic data: the loss falls, checkpoints resume exactly, a crash
during a checkpoint write leaves the previous one, two CPU processes train with DDP."""

import json
import math
import os

import pytest

torch = pytest.importorskip("torch")

from pyddsar.data.synthetic import write_dataset  # noqa: E402
from pyddsar.training.trainer import TrainConfig, Trainer, epoch_order, learning_rate, train  # noqa: E402


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = str(tmp_path_factory.mktemp("synthetic"))
    write_dataset(root, n_train=12, n_val=4, seed=3, image_size=(256, 192))
    return root


def config(data, out, **kw):
    args = dict(data=data, out=str(out), epochs=2, batch=4, size=96, lr=0.01, warmup_epochs=0.0, log_every=1,
                scales=(0.8, 1.0))
    args.update(kw)
    return TrainConfig(**args)


def weights(model):
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def test_loss_falls_and_outputs_are_written(data, tmp_path):
    model, history = train(config(data, tmp_path, epochs=4, batch=6, lr=0.02))
    losses = [p["loss"] for p in history]
    assert len(losses) == 8
    assert sum(losses[-2:]) < sum(losses[:2])
    for name in ("checkpoint.pt", "model.pt", "metrics.jsonl", "metrics.csv", "loss.png"):
        assert os.path.isfile(tmp_path / name), name
    rows = [json.loads(line) for line in open(tmp_path / "metrics.jsonl")]
    assert [r["step"] for r in rows] == list(range(1, 9))


def test_keypoint_head_on_data_without_landmarks(data, tmp_path):
    t = Trainer(config(data, tmp_path, use_kps=True))
    assert t.model.use_kps
    for s in t.dataset.samples:  # data with boxes only
        object.__setattr__(s, "landmarks", None)
    row = t._train_step(next(iter(t._batches())))
    assert row["kps"] == 0.0 and math.isfinite(row["loss"]) and row["num_pos"] > 0


@pytest.mark.parametrize("stop_after", [3, 2])  # mid-epoch and at the epoch boundary (3 steps per epoch)
def test_resume_continues_exactly(data, tmp_path, stop_after):
    straight, _ = train(config(data, tmp_path / "a"))
    train(config(data, tmp_path / "b", max_steps=stop_after))
    resumed, history = train(config(data, tmp_path / "b", resume=True))
    assert history[-1]["step"] == 6
    a, b = weights(straight), weights(resumed)
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k


def test_a_crash_while_writing_a_checkpoint_keeps_the_previous_one(data, tmp_path, monkeypatch):
    trainer = Trainer(config(data, tmp_path, max_steps=1))
    trainer.fit()
    good = (tmp_path / "checkpoint.pt").read_bytes()

    def crash(obj, f, *a, **kw):
        f.write(b"half a checkpoint")
        raise OSError("killed")

    monkeypatch.setattr(torch, "save", crash)
    with pytest.raises(OSError):
        trainer.save()
    monkeypatch.undo()
    assert (tmp_path / "checkpoint.pt").read_bytes() == good
    again = Trainer(config(data, tmp_path, resume=True))
    assert again.step == 1


def test_schedule_and_order():
    cfg = TrainConfig(data=".", epochs=10, warmup_epochs=2.0, lr=0.01, warmup_lr=1e-5, steps=(0.5, 0.8))
    assert learning_rate(cfg, 0, 10) == pytest.approx(1e-5)
    assert learning_rate(cfg, 10, 10) == pytest.approx(1e-5 + (0.01 - 1e-5) / 2)
    assert learning_rate(cfg, 20, 10) == pytest.approx(0.01)
    assert learning_rate(cfg, 50, 10) == pytest.approx(0.001)
    assert learning_rate(cfg, 80, 10) == pytest.approx(0.0001)
    both = epoch_order(7, 0, 1, 0, 2) + epoch_order(7, 0, 1, 1, 2)
    assert sorted(set(both)) == list(range(7)) and len(both) == 8
    assert epoch_order(7, 0, 1) != epoch_order(7, 0, 2)


def test_bad_configuration(data, tmp_path):
    with pytest.raises(ValueError, match="multiple of 32"):
        Trainer(config(data, tmp_path, size=100))
    with pytest.raises(ValueError, match="no dataset folder"):
        Trainer(config(str(tmp_path / "nowhere"), tmp_path))
    with pytest.raises(ValueError, match="no checkpoint"):
        Trainer(config(data, tmp_path / "fresh", resume=True))
    train(config(data, tmp_path / "x", max_steps=1))
    with pytest.raises(ValueError, match="another model"):
        Trainer(config(data, tmp_path / "x", resume=True, model="ddsar-2.5g"))


def test_two_processes_with_ddp_on_the_cpu(data, tmp_path, run_python):
    out = tmp_path / "ddp"
    result = run_python("-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", "29533",
                        "-m", "pyddsar", "train", "--data", data, "--out", str(out), "--epochs", "1",
                        "--batch", "2", "--size", "96", "--warmup-epochs", "0", "--log-every", "1", "--quiet",
                        check=False, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    rows = [json.loads(line) for line in open(out / "metrics.jsonl")]
    assert len(rows) == 3  # 12 images / 2 processes / batch 2
    assert os.path.isfile(out / "model.pt")


ONNX = os.path.join(os.environ.get("PYDDSAR_DATA") or os.path.join(os.path.dirname(__file__), "..", "..", "shared", "data"),
                    "models", "scrfd_2.5g_bnkps.onnx")


@pytest.mark.skipif(not os.path.isfile(ONNX), reason="the pretrained SCRFD ONNX model of ../shared/data is absent")
def test_fine_tuning_starts_from_imported_onnx_weights(data, tmp_path):
    from pyddsar.models import load_scrfd_onnx

    start = load_scrfd_onnx(ONNX)
    model, history = train(config(data, tmp_path, init=ONNX, max_steps=2, lr=0.001))
    assert model.config == start.config and model.use_kps
    assert all(math.isfinite(p["loss"]) for p in history)
    moved = [k for k, v in start.state_dict().items() if not torch.equal(v, model.state_dict()[k])]
    assert moved  # the imported weights were trained, not replaced
    assert os.path.isfile(tmp_path / "model.pt")
