"""The training loop of pyddsar detectors (SPEC section 4): SGD, warm-up then step decay, the loss of
the model's family (:mod:`pyddsar.training.recipe`: SCRFD's QFL + DIoU (+ keypoints) with ATSS
targets, or ASFD's focal + box loss), AMP on CUDA, DistributedDataParallel under torchrun, atomic
checkpoints that resume exactly, metrics to JSONL/CSV and a PNG of the loss curves.

Exact resumption: the data order of an epoch is a permutation drawn from (seed, epoch) and each
sample's augmentation from (seed, epoch, index), so the state to save is the model, the optimiser,
the position (epoch, step) and the torch RNG; a resumed run skips the steps already done.
"""

from __future__ import annotations

import csv
import json
import math
import os
import random
import time
from dataclasses import asdict, dataclass
from typing import List, Optional, Tuple, Union

import numpy as np
import torch
import torch.distributed as dist

from .._atomic import atomic_open, remove_stale_temporaries, torch_save, write_text
from .._interrupt import DeferredInterrupt
from .._validate import integer
from .recipe import recipe_for

CHECKPOINT = "checkpoint.pt"
BOX_LOSSES = ("diou", "smooth_l1", "giou")


@dataclass
class TrainConfig:
    data: str                        # a dataset folder (FaceDataset.from_folder)
    model: Union[str, dict] = "ddsar-0.5g"  # a preset name, a structure string, a search's best.json or a config dict
    out: str = "runs/train"
    epochs: int = 10
    batch: int = 8                   # per process
    size: int = 640                  # square training crops
    lr: Optional[float] = None       # None: SCRFD's 0.01 per 32 images, scaled to batch x processes
    momentum: float = 0.9
    weight_decay: float = 5e-4
    warmup_iters: int = 1500         # mmcv's linear warm-up from warmup_ratio x lr (SCRFD's configs)
    warmup_ratio: float = 0.001
    warmup_epochs: Optional[float] = None  # instead of warmup_iters: this many epochs
    steps: Tuple[float, ...] = (55 / 80, 68 / 80)  # lr x 0.1 from these fractions of the epochs (SCRFD: 440, 544 of 640)
    workers: int = 0
    seed: int = 0
    device: str = "cpu"
    amp: bool = True                 # float16 autocast + GradScaler on CUDA (ignored on the CPU)
    init: Optional[str] = None       # fine-tune from an insightface SCRFD .onnx or a pyddsar model file
    use_kps: Optional[bool] = None   # None: keypoints when the data has landmarks
    max_steps: Optional[int] = None  # stop after this many steps in all (tests, quick demos)
    log_every: int = 10
    scales: Tuple[float, ...] = (0.3, 0.45, 0.6, 0.8, 1.0, 1.2, 1.4, 1.6, 1.8, 2.0)
    resume: bool = False
    backbone: Optional[str] = None          # asfd-baseline: resnet18|34|50, a ddsar preset, best.json or structure
    backbone_weights: Optional[str] = None  # a state dict (torch.save) loaded into the backbone before training
    box_loss: Optional[str] = None          # None: the family's own (SCRFD: DIoU; ASFD: smooth_l1, or "giou")

    def validate(self) -> None:
        for name in ("epochs", "batch", "log_every"):
            setattr(self, name, integer(getattr(self, name), name, low=1))
        self.size = integer(self.size, "size", low=1, multiple_of=32)
        if self.workers < 0:
            raise ValueError(f"workers must be >= 0, got {self.workers}")
        if self.lr is not None and not (isinstance(self.lr, (int, float)) and self.lr > 0 and math.isfinite(self.lr)):
            raise ValueError(f"lr must be a positive number (or None for SCRFD's rule), got {self.lr!r}")
        self.warmup_iters = integer(self.warmup_iters, "warmup_iters", low=0)
        if not 0 < self.warmup_ratio <= 1:
            raise ValueError(f"warmup_ratio must be in (0, 1], got {self.warmup_ratio!r}")
        if self.warmup_epochs is not None and not self.warmup_epochs >= 0:
            raise ValueError(f"warmup_epochs must be >= 0, got {self.warmup_epochs!r}")
        if self.weight_decay < 0 or not 0 <= self.momentum < 1:
            raise ValueError("weight_decay >= 0 and 0 <= momentum < 1 are required")
        if any(not 0 < s < 1 for s in self.steps):
            raise ValueError(f"steps are fractions of training in (0, 1), got {self.steps}")
        if self.max_steps is not None and self.max_steps < 1:
            raise ValueError("max_steps must be positive")
        if not os.path.isdir(self.data):
            raise ValueError(f"no dataset folder at {self.data}")
        try:
            device = torch.device(self.device)
        except (RuntimeError, TypeError):
            raise ValueError(f"device must be cpu, cuda or cuda:N, got {self.device!r}") from None
        if device.type not in ("cpu", "cuda"):
            raise ValueError(f"device must be cpu, cuda or cuda:N, got {self.device!r}")
        if self.backbone_weights is not None and not os.path.isfile(self.backbone_weights):
            raise ValueError(f"no backbone weights file at {self.backbone_weights}")
        if self.box_loss is not None and self.box_loss not in BOX_LOSSES:
            raise ValueError(f"box_loss must be one of {', '.join(BOX_LOSSES)}, got {self.box_loss!r}")


#: SCRFD's learning rate: 0.01 for 8 images per GPU on 4 GPUs (configs/scrfd/scrfd_2.5g_bnkps.py:2,
#: :76 samples_per_gpu=8; README: dist_train.sh ... 4), scaled linearly to other total batches.
SCRFD_LR, SCRFD_TOTAL_BATCH = 0.01, 32


def base_lr(cfg: TrainConfig, world: int = 1) -> float:
    """The learning rate after warm-up: ``cfg.lr``, or SCRFD's scaled to batch x processes."""
    return cfg.lr if cfg.lr is not None else SCRFD_LR * cfg.batch * world / SCRFD_TOTAL_BATCH


def learning_rate(cfg: TrainConfig, step: int, steps_per_epoch: int, lr: Optional[float] = None) -> float:
    """mmcv's step policy with linear warm-up, as SCRFD's configs set it: x0.1 from each epoch
    ``f x epochs`` of ``cfg.steps`` (by epoch), and during the first ``warmup_iters`` steps the
    regular rate times ``1 - (1 - step / warmup_iters) (1 - warmup_ratio)``."""
    lr = base_lr(cfg) if lr is None else lr
    epoch = step // steps_per_epoch
    regular = lr * 0.1 ** sum(epoch >= f * cfg.epochs for f in cfg.steps)
    warm = cfg.warmup_iters if cfg.warmup_epochs is None else cfg.warmup_epochs * steps_per_epoch
    if step < warm:
        return regular * (1 - (1 - step / warm) * (1 - cfg.warmup_ratio))
    return regular


def epoch_order(n: int, seed: int, epoch: int, rank: int = 0, world: int = 1) -> List[int]:
    """The sample order of one epoch for one process: a permutation of (seed, epoch), padded to a
    multiple of the world size and dealt round-robin."""
    perm = np.random.default_rng([seed, epoch]).permutation(n).tolist()
    perm += perm[: (-len(perm)) % world]
    return perm[rank::world]


def _unwrap(model):
    return model.module if hasattr(model, "module") else model


class Trainer:
    def __init__(self, cfg: TrainConfig):
        from ..data import FaceDataset
        from ..data.augment import TrainAugment

        cfg.validate()
        self.cfg = cfg
        self.world = int(os.environ.get("WORLD_SIZE", "1"))
        self.rank = int(os.environ.get("RANK", "0"))
        self.device = torch.device(cfg.device)
        if self.device.type == "cuda" and not torch.cuda.is_available():
            raise ValueError("device cuda was asked for but torch sees no CUDA device")
        if self.world > 1 and not dist.is_initialized():
            backend = "nccl" if self.device.type == "cuda" else "gloo"
            dist.init_process_group(backend)
            if self.device.type == "cuda":
                self.device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
                torch.cuda.set_device(self.device)
        torch.manual_seed(cfg.seed)
        random.seed(cfg.seed)
        if self.device.type == "cpu":
            torch.set_flush_denormal(True)  # subnormal floats make CPU convolutions many times slower

        self.dataset = FaceDataset.from_folder(cfg.data, split="train", seed=cfg.seed,
                                               transform=TrainAugment(size=cfg.size, scales=cfg.scales))
        if len(self.dataset) == 0:
            raise ValueError(f"the training split of {cfg.data} has no usable images")
        has_landmarks = any(s.landmarks is not None for s in self.dataset.samples)
        use_kps = has_landmarks if cfg.use_kps is None else cfg.use_kps
        # channels-last: several times faster depthwise-conv backward passes on the CPU (oneDNN)
        self.model = self._build_model(use_kps).to(self.device, memory_format=torch.channels_last)
        self.recipe = recipe_for(self.model, cfg.size, self.device, cfg.box_loss,
                                 self._reduce_mean if self.world > 1 else None)
        self.steps_per_epoch = math.ceil(math.ceil(len(self.dataset) / self.world) / cfg.batch)
        self.lr = base_lr(cfg, self.world)
        self.optimizer = torch.optim.SGD(self.model.parameters(), lr=learning_rate(cfg, 0, self.steps_per_epoch, self.lr),
                                         momentum=cfg.momentum, weight_decay=cfg.weight_decay)
        self.scaler = torch.amp.GradScaler("cuda") if (cfg.amp and self.device.type == "cuda") else None
        self.epoch, self.step_in_epoch, self.step = 0, 0, 0
        self.history: List[dict] = []
        self.window: List[dict] = []  # the steps since the last logged point
        os.makedirs(cfg.out, exist_ok=True)
        if self.rank == 0:
            remove_stale_temporaries(cfg.out)  # left by a process killed while writing
        if cfg.resume:
            self._load(os.path.join(cfg.out, CHECKPOINT))
        self.ddp = self.model
        if self.world > 1:
            self.ddp = torch.nn.parallel.DistributedDataParallel(
                self.model, device_ids=[self.device.index] if self.device.type == "cuda" else None)

    # -- model ------------------------------------------------------------------------------------
    def _build_model(self, use_kps: bool):
        model = self._initial_model(use_kps)
        if self.cfg.backbone_weights:
            from ..models.resnet import load_backbone_weights

            try:
                load_backbone_weights(model.backbone, self.cfg.backbone_weights)
            except RuntimeError as e:
                raise ValueError(f"{self.cfg.backbone_weights} does not fit the backbone: "
                                 f"{str(e).splitlines()[0]}") from None
        return model

    def _initial_model(self, use_kps: bool):
        from ..asfd.config import ASFDConfig
        from ..models import build_detector, config_for

        cfg = self.cfg
        if cfg.init:
            from ..model_file import is_model_file, load_model

            if cfg.backbone:
                raise ValueError("--backbone builds a new detector; it cannot be combined with --init")
            if cfg.init.endswith(".onnx"):
                from ..models import load_scrfd_onnx

                return load_scrfd_onnx(cfg.init).train()
            if is_model_file(cfg.init):
                return load_model(cfg.init)[0].train()
            raise ValueError(f"--init {cfg.init}: expected an insightface SCRFD .onnx or a pyddsar model file")
        base = config_for(cfg.model)
        if isinstance(base, ASFDConfig):
            if cfg.use_kps:
                raise ValueError("ASFD detectors have no landmark branch (use_kps must be None or False)")
            return build_detector(base, **({"backbone": cfg.backbone} if cfg.backbone else {}))
        if cfg.backbone:
            raise ValueError(f"--backbone chooses the backbone of asfd-baseline; {base.name} is an SCRFD-framework "
                             "detector: give its backbone as --model / --arch (a structure string or best.json)")
        return build_detector(base, use_kps=use_kps)

    # -- checkpoints ------------------------------------------------------------------------------
    def _state(self) -> dict:
        return {
            "format": "pyddsar-train-checkpoint",
            "config": asdict(self.cfg),
            "model_config": _unwrap(self.model).config.to_dict(),
            "model": _unwrap(self.model).state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scaler": self.scaler.state_dict() if self.scaler else None,
            "epoch": self.epoch,
            "step_in_epoch": self.step_in_epoch,
            "step": self.step,
            "history": self.history,
            "window": self.window,
            "torch_rng": torch.get_rng_state(),
            "python_rng": random.getstate(),
        }

    def save(self) -> None:
        if self.rank == 0:
            # atomic: a kill during the write leaves the previous checkpoint intact
            torch_save(self._state(), os.path.join(self.cfg.out, CHECKPOINT))

    def _load(self, path: str) -> None:
        if not os.path.isfile(path):
            raise ValueError(f"--resume: no checkpoint at {path}")
        try:
            state = torch.load(path, map_location=self.device, weights_only=False)
        except Exception as e:
            raise ValueError(f"checkpoint {path} is corrupt ({type(e).__name__}: {e})") from None
        if not isinstance(state, dict) or state.get("format") != "pyddsar-train-checkpoint":
            raise ValueError(f"{path} is not a pyddsar training checkpoint")
        if state["model_config"] != _unwrap(self.model).config.to_dict():
            raise ValueError(f"checkpoint {path} was written for another model ({state['model_config'].get('name')})")
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        if self.scaler and state["scaler"]:
            self.scaler.load_state_dict(state["scaler"])
        self.epoch, self.step_in_epoch, self.step = state["epoch"], state["step_in_epoch"], state["step"]
        self.history = list(state["history"])
        self.window = list(state.get("window", []))
        torch.set_rng_state(state["torch_rng"].cpu())
        random.setstate(state["python_rng"])
        if self.rank == 0:  # a run killed after logging but before its checkpoint logged those steps already
            self._write_metrics_jsonl()

    # -- the loop ---------------------------------------------------------------------------------
    def _batches(self):
        from torch.utils.data import DataLoader

        from ..data.augment import collate

        self.dataset.set_epoch(self.epoch)
        order = epoch_order(len(self.dataset), self.cfg.seed, self.epoch, self.rank, self.world)
        order = order[self.step_in_epoch * self.cfg.batch:]
        return DataLoader(torch.utils.data.Subset(self.dataset, order), batch_size=self.cfg.batch, shuffle=False,
                          num_workers=self.cfg.workers, collate_fn=collate)

    def _train_step(self, batch) -> dict:
        images, boxes, landmarks, ignore = batch
        images = images.to(self.device, non_blocking=True).contiguous(memory_format=torch.channels_last)
        lr = learning_rate(self.cfg, self.step, self.steps_per_epoch, self.lr)
        for g in self.optimizer.param_groups:
            g["lr"] = lr
        self.optimizer.zero_grad(set_to_none=True)
        with torch.autocast(device_type="cuda", dtype=torch.float16, enabled=self.scaler is not None):
            out = self.ddp(images)
        terms = self.recipe.loss(out, boxes, landmarks, ignore)
        if not torch.isfinite(terms.total):
            raise FloatingPointError(f"the loss became {terms.total.item()} at step {self.step}; lower the lr")
        if self.scaler is not None:
            self.scaler.scale(terms.total).backward()
            if self.recipe.grad_clip:
                self.scaler.unscale_(self.optimizer)
                self._clip()
            self.scaler.step(self.optimizer)
            self.scaler.update()
        else:
            terms.total.backward()
            if self.recipe.grad_clip:
                self._clip()
            self.optimizer.step()
        return {"loss": float(terms.total.detach()), "cls": float(terms.cls), "box": float(terms.box),
                "kps": float(terms.kps), "num_pos": terms.num_pos, "lr": lr}

    def _clip(self) -> None:
        torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.recipe.grad_clip)

    @property
    def anchors(self):
        """The anchor set of the SCRFD recipe (its targets are ``self.recipe.targets(...)``)."""
        return self.recipe.anchors

    def targets(self, boxes, landmarks, ignore):
        """ATSS targets of a collated batch (SCRFD-framework detectors)."""
        return self.recipe.targets(boxes, landmarks, ignore)

    def _reduce_mean(self, value: torch.Tensor) -> torch.Tensor:
        """SCRFD's reduce_mean: the mean of a scalar over the processes (the loss normalisers)."""
        value = value.detach().clone().float()
        dist.all_reduce(value)
        return value / self.world

    def fit(self, progress=None) -> List[dict]:
        """Train to the end (or max_steps); checkpoint every epoch and on Ctrl-C. Returns the history
        of logged points (one per `log_every` steps, with the mean of their terms).

        Ctrl-C takes effect at the end of the step it lands in (all processes stop at the same step):
        the checkpoint then holds a state an uninterrupted run also passes through, and `--resume`
        ends with the same weights, BN statistics and history."""
        cfg = self.cfg
        self.model.train()
        start = time.perf_counter()
        with DeferredInterrupt() as interrupt:
            try:
                while self.epoch < cfg.epochs:
                    for batch in self._batches():
                        if cfg.max_steps is not None and self.step >= cfg.max_steps:
                            break
                        self.window.append(self._train_step(batch))
                        self.step += 1
                        self.step_in_epoch += 1
                        if len(self.window) == cfg.log_every or self.step_in_epoch == self.steps_per_epoch:
                            self._log(self.window, start)
                            self.window = []
                        if progress is not None and self.rank == 0:
                            progress(self.epoch, self.step_in_epoch, self.steps_per_epoch, self.history)
                        if self._stop_requested(interrupt):
                            raise KeyboardInterrupt
                    if cfg.max_steps is not None and self.step >= cfg.max_steps:
                        if self.window:
                            self._log(self.window, start)
                            self.window = []
                        self.save()
                        break
                    self.epoch += 1
                    self.step_in_epoch = 0
                    self.save()
            except KeyboardInterrupt:
                self.save()  # between two steps; an unfinished log window is saved and continued
                raise
            finally:
                self._write_outputs()
        return self.history

    def _stop_requested(self, interrupt) -> bool:
        """Whether any process got Ctrl-C during this step (one flag all-reduced, so all stop together)."""
        if self.world == 1:
            return interrupt.requested
        flag = torch.tensor(float(interrupt.requested), device=self.device)
        dist.all_reduce(flag, op=dist.ReduceOp.MAX)
        return bool(flag.item())

    def _log(self, window: List[dict], start: float) -> None:
        point = {k: float(np.mean([w[k] for w in window])) for k in ("loss", "cls", "box", "kps", "num_pos")}
        point.update(epoch=self.epoch, step=self.step, lr=window[-1]["lr"], elapsed_s=time.perf_counter() - start)
        self.history.append(point)
        if self.rank == 0:  # rewritten whole and atomically: a kill never leaves half a line
            self._write_metrics_jsonl()

    def _write_metrics_jsonl(self) -> None:
        write_text(os.path.join(self.cfg.out, "metrics.jsonl"), "".join(json.dumps(p) + "\n" for p in self.history))

    def _write_outputs(self) -> None:
        if self.rank != 0 or not self.history:
            return
        from ..model_file import save_model
        from ..plots import write_line_plot

        keys = ("step", "epoch", "loss", "cls", "box", "kps", "num_pos", "lr")
        with atomic_open(os.path.join(self.cfg.out, "metrics.csv"), "w", newline="") as f:
            w = csv.writer(f)
            w.writerow(keys)
            for p in self.history:
                w.writerow([p[k] for k in keys])
        steps = [p["step"] for p in self.history]
        series = {k: [p[k] for p in self.history] for k in ("loss", "cls", "box", "kps")}
        write_line_plot(os.path.join(self.cfg.out, "loss.png"), steps, series, title="training loss",
                        xlabel="step", ylabel="loss")
        save_model(_unwrap(self.model), os.path.join(self.cfg.out, "model.pt"))
        try:  # TensorBoard when installed
            from torch.utils.tensorboard import SummaryWriter
        except Exception:
            return
        writer = SummaryWriter(os.path.join(self.cfg.out, "tensorboard"))
        for p in self.history:
            for k in ("loss", "cls", "box", "kps", "lr"):
                writer.add_scalar(k, p[k], p["step"])
        writer.close()


def train(cfg: TrainConfig, progress=None):
    """Build a :class:`Trainer` and run it; returns (model, history)."""
    trainer = Trainer(cfg)
    history = trainer.fit(progress)
    if dist.is_initialized():
        dist.barrier()
    return _unwrap(trainer.model), history
