"""The training loop on tiny synthetic data: the loss falls, checkpoints resume exactly, a crash
during a checkpoint write leaves the previous one, two CPU processes train with DDP."""

import json
import math
import os
import socket
import textwrap
import time

import pytest

torch = pytest.importorskip("torch")

from pyddsar.data.synthetic import write_dataset  # noqa: E402
from pyddsar.training.trainer import TrainConfig, Trainer, base_lr, epoch_order, learning_rate, train  # noqa: E402


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


def mmcv_step_lr(it, steps_per_epoch, base=0.01, step=(440, 544), warmup_iters=1500, warmup_ratio=0.001):
    """SCRFD's schedule (configs/scrfd/scrfd_2.5g_bnkps.py lr_config) as mmcv's LrUpdaterHook runs it:
    `policy='step'` by epoch, `warmup='linear'`: k = (1 - it / warmup_iters) * (1 - ratio), lr * (1 - k)."""
    epoch = it // steps_per_epoch
    regular = base * 0.1 ** sum(epoch >= s for s in step)
    if it < warmup_iters:
        return regular * (1 - (1 - it / warmup_iters) * (1 - warmup_ratio))
    return regular


def test_schedule_is_scrfds():
    cfg = TrainConfig(data=".", epochs=640)  # every default: SCRFD's lr 0.01 at 32 images, 1500 warm-up steps
    assert base_lr(cfg, world=4) == pytest.approx(0.01)  # batch 8 x 4 processes = SCRFD's 32
    assert base_lr(cfg) == pytest.approx(0.0025) and base_lr(TrainConfig(data=".", batch=16), world=8) == pytest.approx(0.04)
    assert base_lr(TrainConfig(data=".", lr=0.003), world=8) == 0.003  # an explicit rate is used as given
    spe = 50
    for it in list(range(0, 1600, 37)) + [440 * spe - 1, 440 * spe, 544 * spe - 1, 544 * spe, 640 * spe - 1]:
        assert learning_rate(cfg, it, spe, 0.01) == pytest.approx(mmcv_step_lr(it, spe), rel=1e-12), it
    assert learning_rate(cfg, 0, spe, 0.01) == pytest.approx(1e-5)
    # the decays fall on epochs 440 and 544, not at 0.69 and 0.85 of the steps
    assert learning_rate(cfg, 440 * spe - 1, spe, 0.01) == pytest.approx(0.01)
    assert learning_rate(cfg, 440 * spe, spe, 0.01) == pytest.approx(0.001)
    assert learning_rate(cfg, 544 * spe, spe, 0.01) == pytest.approx(0.0001)
    short = TrainConfig(data=".", epochs=10, warmup_epochs=2.0, lr=0.01)  # warm-up given in epochs
    assert learning_rate(short, 10, 10) == pytest.approx(0.01 * (1 - 0.5 * 0.999))
    assert learning_rate(short, 20, 10) == pytest.approx(0.01)
    assert learning_rate(short, 69, 10) == pytest.approx(0.01) and learning_rate(short, 70, 10) == pytest.approx(0.001)


def test_epoch_order():
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


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


DDP_STEPS, DDP_BATCH = 3, 2


def torchrun(run_python, *args, **kw):
    return run_python("-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_addr", "127.0.0.1",
                      "--master_port", str(free_port()), "-m", "pyddsar", *args, check=False, **kw)


def two_ranks_in_one_process(data, out, steps, normalisers="averaged"):
    """Distributed data parallel, written out for two processes in one: each step, each rank's batch
    (epoch_order's round-robin share) goes through the same model (train-mode BN on that rank's own
    images, as on its own GPU), the loss normalisers are the means of the two ranks' values
    (`normalisers="local"`: each rank's own, the old behaviour), and the gradient is the mean of the
    two ranks' gradients (what DDP's all-reduce computes). One thread, as torchrun's workers."""
    from pyddsar.data.augment import collate
    from pyddsar.training.criterion import detection_loss

    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # other thread counts take other kernels, which round differently
    try:
        t = Trainer(config(data, out, epochs=1, batch=DDP_BATCH, lr=0.01, warmup_epochs=None, warmup_iters=0,
                           scales=TrainConfig.scales))  # the CLI's (default) crop scales
        model = t.model
        model.train()
        for step in range(steps):
            for g in t.optimizer.param_groups:
                g["lr"] = learning_rate(t.cfg, step, t.steps_per_epoch, 0.01)
            t.optimizer.zero_grad(set_to_none=True)
            t.dataset.set_epoch(0)
            ranks = []
            for r in range(2):
                order = epoch_order(len(t.dataset), t.cfg.seed, 0, r, 2)[step * DDP_BATCH:(step + 1) * DDP_BATCH]
                images, boxes, landmarks, ignore = collate([t.dataset[i] for i in order])
                out = model(images.contiguous(memory_format=torch.channels_last))
                out = type(out)(*[None if o is None else [x.float() for x in o] for o in out])
                ranks.append((out, t.targets(boxes, landmarks, ignore)))
            npos = [sum(int(x.positive.sum()) for x in tg) for _, tg in ranks]
            wsum = [float(torch.cat([torch.cat(list(o.cls), 1)[i, x.positive, 0].detach().sigmoid()
                                     for i, x in enumerate(tg)]).sum()) for o, tg in ranks]
            total = 0
            for r, (o, tg) in enumerate(ranks):
                means = iter([sum(npos) / 2, sum(wsum) / 2] if normalisers == "averaged" else [npos[r], wsum[r]])
                total = total + detection_loss(o, t.anchors, tg, reduce_mean=lambda v: torch.tensor(next(means))).total / 2
            total.backward()
            t.optimizer.step()
        return dict(model.named_parameters())
    finally:
        torch.set_num_threads(threads)


def largest_difference(a, b):
    return max(float((a[n] - b[n]).abs().max()) for n in a)


def test_two_processes_train_as_one_process_on_the_same_global_batch(data, tmp_path, run_python):
    from pyddsar.model_file import load_model

    out = tmp_path / "ddp"
    common = ["train", "--data", data, "--out", str(out), "--epochs", "1", "--batch", str(DDP_BATCH), "--size", "96",
              "--lr", "0.01", "--warmup-iters", "0", "--log-every", "1", "--quiet"]
    start = dict(Trainer(config(data, tmp_path / "init")).model.named_parameters())
    for steps, extra in ((1, []), (DDP_STEPS, ["--resume"])):
        r = torchrun(run_python, *common, "--max-steps", str(steps), *extra, timeout=300)
        assert r.returncode == 0, r.stderr[-3000:]
        ddp = dict(load_model(str(out / "model.pt"))[0].named_parameters())
        ref = two_ranks_in_one_process(data, tmp_path / f"ref{steps}", steps)
        moved = largest_difference(ref, start)
        assert moved > 1e-3
        if steps == 1:  # one step: the same numbers up to the order of float sums
            for name in ddp:
                torch.testing.assert_close(ddp[name], ref[name], rtol=1e-4, atol=1e-6, msg=lambda m: f"{name}: {m}")
            # the test can fail: each rank normalising by its own positives and weights moves far off
            local = two_ranks_in_one_process(data, tmp_path / "local", 1, normalisers="local")
            assert largest_difference(ddp, local) > 100 * 1e-6
        else:  # more steps: float noise grows (a 1e-8 change of the weights moves their gradients by ~1 %)
            assert largest_difference(ddp, ref) < 0.1 * moved
    rows = [json.loads(line) for line in open(out / "metrics.jsonl")]
    assert [row["step"] for row in rows] == list(range(1, DDP_STEPS + 1))


def test_a_failing_process_stops_the_others(data, tmp_path, run_python):
    inject = tmp_path / "inject"
    inject.mkdir()
    (inject / "sitecustomize.py").write_text(textwrap.dedent("""
        import os
        if os.environ.get("RANK") == "1":
            import pyddsar.training.trainer as tr
            step = tr.Trainer._train_step
            def failing(self, batch):
                if self.step == 1:
                    raise RuntimeError("rank 1 broke at step 1")
                return step(self, batch)
            tr.Trainer._train_step = failing
    """))
    start = time.monotonic()
    r = torchrun(run_python, "train", "--data", data, "--out", str(tmp_path / "f"), "--epochs", "1", "--batch", "2",
                 "--size", "96", "--log-every", "1", "--quiet", timeout=240, pythonpath=[inject])
    assert r.returncode != 0
    assert "rank 1 broke at step 1" in r.stderr and "ChildFailedError" in r.stderr
    assert time.monotonic() - start < 120  # stopped, not waiting for gloo's 30-minute timeout


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


def test_the_progress_line_shows_no_placeholder_and_the_rate(data, tmp_path, capsys):
    from pyddsar.cli import main

    assert main(["train", "--data", data, "--out", str(tmp_path / "p"), "--epochs", "1", "--batch", "2", "--size", "96",
                 "--log-every", "2", "--max-steps", "4"]) == 0
    err = capsys.readouterr().err
    lines = [line for line in err.replace("\r", "\n").splitlines() if line.startswith("epoch")]
    assert len(lines) >= 2 and "nan" not in err.lower()  # the tqdm bar: first and last draw at least
    assert "loss -" in lines[0] and "- images/s" in lines[0]  # before the first logged step and timed interval
    rate = float(lines[-1].split("images/s")[0].split()[-1])
    assert rate > 0 and "loss -" not in lines[-1]


def interrupt_at_line(trainer, text, step):
    """A tracer that sends SIGINT when Trainer.fit reaches the line holding `text` at `step`."""
    import inspect
    import signal
    import sys

    lines, first = inspect.getsourcelines(Trainer.fit)
    target = first + next(i for i, line in enumerate(lines) if text in line)
    code = Trainer.fit.__code__

    def local(frame, event, arg):
        if event == "line" and frame.f_lineno == target and trainer.step == step:
            signal.raise_signal(signal.SIGINT)
        return local

    def tracer(frame, event, arg):
        return local if frame.f_code is code else None

    sys.settrace(tracer)
    return lambda: sys.settrace(None)


@pytest.mark.parametrize("where", ["forward", "backward", "optimizer step", "self.step += 1", "self.step_in_epoch += 1",
                                   "self._log(self.window, start)"])
def test_ctrl_c_anywhere_in_a_step_resumes_exactly(data, tmp_path, where):
    import signal

    straight = Trainer(config(data, tmp_path / "a", log_every=2))
    straight.fit()
    t = Trainer(config(data, tmp_path / "b", log_every=2))
    k = 3  # mid-epoch (3 steps per epoch... the second epoch's first step), mid-window
    untrace = lambda: None  # noqa: E731
    if where == "forward":
        handle = next(m for m in t.model.modules() if isinstance(m, torch.nn.BatchNorm2d)).register_forward_hook(
            lambda *a: signal.raise_signal(signal.SIGINT) if t.step == k else None)
    elif where == "backward":
        handle = next(iter(t.model.parameters())).register_hook(
            lambda g: signal.raise_signal(signal.SIGINT) if t.step == k else None)
    elif where == "optimizer step":
        handle = t.optimizer.register_step_pre_hook(lambda *a: signal.raise_signal(signal.SIGINT) if t.step == k else None)
    else:  # lines after `self.step += 1` see the step counted already; the log line runs at step 5
        k = 4 if "_log" in where else k
        handle, untrace = None, interrupt_at_line(t, where, k + 1 if "step_in_epoch" in where or "_log" in where else k)
    try:
        with pytest.raises(KeyboardInterrupt):
            t.fit()
    finally:
        untrace()
        if handle is not None:
            handle.remove()
    assert t.step == k + 1  # the step it landed in was completed, then saved
    resumed = Trainer(config(data, tmp_path / "b", log_every=2, resume=True))
    resumed.fit()
    a, b = straight.model.state_dict(), resumed.model.state_dict()
    for name in a:  # weights and BatchNorm statistics
        assert torch.equal(a[name], b[name]), name
    drop = ("elapsed_s",)
    assert [{k: v for k, v in p.items() if k not in drop} for p in resumed.history] == \
        [{k: v for k, v in p.items() if k not in drop} for p in straight.history]
    lines = [json.loads(line) for line in open(tmp_path / "b" / "metrics.jsonl")]
    assert [p["step"] for p in lines] == [p["step"] for p in straight.history]  # no duplicated lines


def test_a_killed_writer_leaves_no_temporary_file_and_no_duplicated_metrics(data, tmp_path, run_python):
    out = tmp_path / "k"
    train(config(data, out, max_steps=3, log_every=1))
    (out / "checkpoint.pt.tmp-999999999").write_bytes(b"half")  # a writer killed by SIGKILL (no such pid)
    with open(out / "metrics.jsonl", "a") as f:  # steps logged after the last checkpoint, then killed
        f.write(json.dumps({"step": 4, "loss": 1.0}) + "\n")
    resumed = Trainer(config(data, out, log_every=1, resume=True))
    assert not (out / "checkpoint.pt.tmp-999999999").exists()
    resumed.fit()
    steps = [json.loads(line)["step"] for line in open(out / "metrics.jsonl")]
    assert steps == list(range(1, 7))
