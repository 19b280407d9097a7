"""The AutoFAE neck search of SPEC section 6 on a pyddsar data set, and the saved form of its result.

Bi-level: the training split is cut 9:9:2 (weights / architecture / mini-validation). Every step
takes one batch of the weight part and updates the network weights by SGD (lr 0.01 x batch / 16
unless given, warmed up linearly over a tenth of the steps, at most 500); from half-way on (the
architecture is frozen for the first half) it also takes one batch of the architecture part and
updates ``arch_parameters`` (alpha, beta, kappa, gamma) by Adam (lr 0.01) with the first-order
gradient (default) or, with ``second_order``, DARTS' unrolled gradient
(:func:`pyddsar.asfd.unrolled.unrolled_arch_grads`, virtual step = the weights' SGD lr).
The Gumbel temperature follows :func:`pyddsar.asfd.gumbel.tau_schedule` from 1.0 to 0.1 over all
steps. A checkpoint (model, both optimisers, position, Gumbel RNG, history) is written atomically
after every epoch (or every ``checkpoint_every`` steps) and on Ctrl-C, which takes effect at the end of
the current step; ``resume=True`` continues from it and ends with the same result as an uninterrupted
run. At the end the AutoFAE is derived and saved.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import asdict, dataclass
from typing import Optional

import torch

from .._atomic import torch_save, write_text
from .._interrupt import DeferredInterrupt
from .._validate import integer
from ..model_file import save_model
from .autofa import PLACEMENTS, AutoFAE, AutoFAESpec, DerivedAutoFAE, StackedAutoFAE
from .config import backbone_fields
from .gumbel import tau_schedule
from .params import arch_parameters, weight_parameters
from .build import build_asfd_baseline, config_of
from .train import (batch_loss, batches, check_device, load_train_dataset, minival_ap, split_indices, to_device,
                    warmup_factor, warmup_steps, weights_lr)
from .unrolled import unrolled_arch_grads

FORMAT = "pyddsar-asfd-autofae"
CHECKPOINT = "checkpoint.pt"
CHECKPOINT_FORMAT = "pyddsar-asfd-neck-checkpoint"


# ----------------------------------------------------------------------------------------------
# saved results


def load_autofae_spec(path: str) -> AutoFAESpec:
    """The spec in ``autofae.json`` / ``autofae.pt`` written by the neck search (or a bare spec dict)."""
    if not os.path.isfile(path):
        raise ValueError(f"no AutoFAE file at {path}")
    if path.endswith(".pt"):
        d = torch.load(path, map_location="cpu", weights_only=False)
    else:
        try:
            with open(path) as f:
                d = json.load(f)
        except json.JSONDecodeError as e:
            raise ValueError(f"{path}: not JSON ({e})") from None
    if isinstance(d, dict) and "spec" in d:
        d = d["spec"]
    if not isinstance(d, dict):
        raise ValueError(f"{path}: not an AutoFAE spec")
    return AutoFAESpec.from_dict(d)


def load_derived_autofae(path: str) -> DerivedAutoFAE:
    """The derived AutoFAE saved as ``autofae.pt`` (spec, width and searched weights)."""
    if not os.path.isfile(path):
        raise ValueError(f"no AutoFAE file at {path}")
    d = torch.load(path, map_location="cpu", weights_only=False)
    if not isinstance(d, dict) or d.get("format") != FORMAT:
        raise ValueError(f"{path} is not a saved AutoFAE ({FORMAT})")
    m = DerivedAutoFAE(int(d["channels"]), AutoFAESpec.from_dict(d["spec"]))
    m.load_state_dict(d["state_dict"])
    return m


# ----------------------------------------------------------------------------------------------
# search


@dataclass
class NeckSearchConfig:
    data: str
    out: str = "runs/asfd-neck"
    epochs: int = 10
    size: int = 256
    placement: str = "between"
    seed: int = 0
    backbone: str = "resnet18"
    base_width: int = 64
    channels: int = 64
    head_convs: int = 2
    batch: int = 4
    lr: Optional[float] = None  # SGD, network weights; None: 0.01 x batch / 16 (train.default_lr)
    arch_lr: float = 0.01      # Adam, architecture parameters
    momentum: float = 0.9
    weight_decay: float = 1e-4
    box_loss: str = "smooth_l1"
    max_steps: Optional[int] = None   # the search has this many steps in all (tests, demos)
    checkpoint_every: Optional[int] = None  # steps between checkpoints; None: once per epoch
    resume: bool = False
    device: str = "cpu"
    second_order: bool = False        # DARTS' unrolled architecture gradient (pyddsar.asfd.unrolled)

    def validate(self) -> None:
        for name in ("epochs", "base_width", "channels", "batch"):
            setattr(self, name, integer(getattr(self, name), name, low=1))
        self.size = integer(self.size, "size", low=64)
        if self.placement not in PLACEMENTS:
            raise ValueError(f"placement must be one of {PLACEMENTS}, got {self.placement!r}")
        weights_lr(self.lr, self.batch)
        if not self.arch_lr > 0:
            raise ValueError(f"arch_lr must be positive, got {self.arch_lr!r}")
        for name in ("max_steps", "checkpoint_every"):
            setattr(self, name, integer(getattr(self, name), name, low=1, allow_none=True))
        if not self.data or not os.path.isdir(self.data):
            raise ValueError(f"no dataset folder at {self.data}")
        check_device(self.device)
        backbone_fields(self.backbone)  # a ResNet name or a searched backbone, else ValueError


# fields that may differ between a run and its resumption (they do not change the result)
_RESUMABLE_CHANGES = ("out", "resume", "device", "checkpoint_every")


def _check_resumable(saved: dict, cfg: NeckSearchConfig, path: str) -> None:
    if saved.get("format") != CHECKPOINT_FORMAT:
        raise ValueError(f"{path} is not a neck-search checkpoint")
    now = asdict(cfg)
    differ = [k for k, v in saved.get("config", {}).items() if k not in _RESUMABLE_CHANGES and now.get(k) != v]
    if differ:
        raise ValueError(f"--resume: {path} was written with other settings ("
                         + ", ".join(f"{k}={saved['config'][k]!r}, now {now.get(k)!r}" for k in differ) + ")")


def _arch_vector(model) -> torch.Tensor:
    ps = arch_parameters(model)
    return torch.cat([p.detach().flatten().cpu() for p in ps]) if ps else torch.zeros(0)


def search_neck(cfg: NeckSearchConfig, log=print, progress=None) -> dict:
    """Run the search; write ``checkpoint.pt``, ``autofae.json``, ``autofae.txt``, ``autofae.pt``,
    ``history.jsonl`` under ``cfg.out``. Returns a summary dict (also in ``autofae.json``).

    ``log(message)`` gets a line per epoch; ``progress``, when given, is called after every step as
    ``progress(done, total, phase="neck search", loss=..., tau=..., arch_loss=...)`` (``arch_loss``
    None while the architecture is frozen)."""
    cfg.validate()
    os.makedirs(cfg.out, exist_ok=True)
    torch.manual_seed(cfg.seed)
    dataset = load_train_dataset(cfg.data, cfg.size, cfg.seed)
    w_idx, a_idx, m_idx = split_indices(len(dataset), (9, 9, 2), cfg.seed)
    gen = torch.Generator().manual_seed(cfg.seed)
    neck = AutoFAE(cfg.channels, 6, cfg.placement, generator=gen)
    dev = torch.device(cfg.device)
    model = build_asfd_baseline(cfg.backbone, neck=neck, channels=cfg.channels, head_convs=cfg.head_convs,
                                base_width=cfg.base_width).to(dev, memory_format=torch.channels_last)
    w_params, a_params = weight_parameters(model), arch_parameters(model)
    lr = weights_lr(cfg.lr, cfg.batch)
    w_opt = torch.optim.SGD(w_params, lr=lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)
    a_opt = torch.optim.Adam(a_params, lr=cfg.arch_lr, betas=(0.5, 0.999), weight_decay=1e-3)
    spe = math.ceil(len(w_idx) / cfg.batch)
    total = cfg.epochs * spe
    if cfg.max_steps is not None:
        total = min(total, cfg.max_steps)
    freeze = total // 2
    warmup = warmup_steps(total)
    every = cfg.checkpoint_every or spe
    step, history = 0, []
    arch_start = _arch_vector(model)
    ckpt = os.path.join(cfg.out, CHECKPOINT)
    if cfg.resume:
        if not os.path.isfile(ckpt):
            raise ValueError(f"--resume: no checkpoint at {ckpt}")
        st = torch.load(ckpt, map_location=dev, weights_only=False)
        _check_resumable(st, cfg, ckpt)
        model.load_state_dict(st["model"])
        w_opt.load_state_dict(st["w_opt"])
        a_opt.load_state_dict(st["a_opt"])
        step, history = st["step"], st["history"]
        arch_start = st["arch_start"].cpu()
        gen.set_state(st["gumbel_rng"].cpu())
    # Each stream restarts at the batch it would have drawn next: the weight part draws one batch per
    # step, the architecture part one per step from the freeze on.
    w_it = batches(dataset, w_idx, cfg.batch, cfg.seed, start=step)
    a_it = batches(dataset, a_idx, cfg.batch, cfg.seed + 1, start=max(0, step - freeze))
    model.train()

    def save():
        torch_save({"format": CHECKPOINT_FORMAT, "config": asdict(cfg), "model": model.state_dict(),
                     "w_opt": w_opt.state_dict(), "a_opt": a_opt.state_dict(), "step": step,
                     "history": history, "gumbel_rng": gen.get_state(), "arch_start": arch_start}, ckpt)

    def search_step() -> dict:
        """One SGD step of the weights and, from the freeze on, one Adam step of the architecture."""
        tau = tau_schedule(step, total, 1.0, 0.1)
        neck.set_tau(tau)
        for group in w_opt.param_groups:
            group["lr"] = lr * warmup_factor(step, warmup)
        images, boxes, ignore = next(w_it)
        wl = batch_loss(model, to_device(images, dev), boxes, ignore, cfg.box_loss)
        w_opt.zero_grad(set_to_none=True)
        wl["loss"].backward()
        torch.nn.utils.clip_grad_norm_(w_params, 10.0)
        w_opt.step()
        row = {"step": step + 1, "tau": tau, "loss": float(wl["loss"].detach()), "arch_loss": None}
        if step >= freeze and a_params:
            a_images, a_boxes, a_ignore = next(a_it)
            a_opt.zero_grad(set_to_none=True)
            if cfg.second_order:
                noise = gen.get_state()

                def loss_on(x, bx, ig):
                    def f():
                        gen.set_state(noise)  # the same Gumbel draws in every pass of the unrolled step
                        return batch_loss(model, x, bx, ig, cfg.box_loss)["loss"]
                    return f

                grads, row["arch_loss"] = unrolled_arch_grads(
                    loss_on(to_device(images, dev), boxes, ignore),
                    loss_on(to_device(a_images, dev), a_boxes, a_ignore),
                    w_params, a_params, xi=w_opt.param_groups[0]["lr"])
                for p, g in zip(a_params, grads):
                    p.grad = g
            else:
                al = batch_loss(model, to_device(a_images, dev), a_boxes, a_ignore, cfg.box_loss)
                al["loss"].backward()
                row["arch_loss"] = float(al["loss"].detach())
            a_opt.step()
        if not math.isfinite(row["loss"]):
            raise ValueError(f"the neck search diverged at step {step + 1}")
        return row

    with DeferredInterrupt() as interrupt:
        while step < total:
            row = search_step()
            history.append(row)
            step += 1
            if progress is not None:
                progress(step, total, phase="neck search", loss=row["loss"], tau=row["tau"], arch_loss=row["arch_loss"])
            if step % every == 0 or step == total or interrupt.requested:
                save()
            if interrupt.requested:
                raise KeyboardInterrupt(f"neck search interrupted after step {step}; checkpoint saved")
            if step % spe == 0 or step == total:
                log(f"step {step}/{total}  tau {row['tau']:.3f}  loss {row['loss']:.4f}"
                    + (f"  arch loss {row['arch_loss']:.4f}" if row["arch_loss"] is not None
                       else "  (architecture frozen)"))
    derived = neck.derive()
    model.neck = StackedAutoFAE.of(derived)
    model.config = config_of(model).replace(name="asfd-autofae")  # a plain ASFD detector now: a model file
    model.eval()
    ap = minival_ap(model, [dataset.samples[i] for i in m_idx], cfg.size, device=cfg.device)
    spec = neck.spec()
    description = derived.describe()
    summary = {
        "format": FORMAT, "channels": cfg.channels, "spec": spec.to_dict(), "description": description,
        "placement": cfg.placement, "steps": total, "arch_frozen_steps": freeze,
        "arch_change_l2": float((_arch_vector(neck) - arch_start).norm()),
        "split": {"weights": len(w_idx), "architecture": len(a_idx), "minival": len(m_idx)},
        "minival_ap_derived": ap, "config": asdict(cfg),
    }
    write_text(os.path.join(cfg.out, "autofae.json"), json.dumps(summary, indent=1))
    write_text(os.path.join(cfg.out, "autofae.txt"), description + "\n")
    torch_save({"format": FORMAT, "channels": cfg.channels, "spec": spec.to_dict(),
                "state_dict": {k: v.cpu() for k, v in derived.state_dict().items()}},
               os.path.join(cfg.out, "autofae.pt"))
    save_model(model, os.path.join(cfg.out, "model.pt"))
    write_text(os.path.join(cfg.out, "detector.json"), json.dumps(model.config.to_dict(), indent=1))
    write_text(os.path.join(cfg.out, "history.jsonl"), "".join(json.dumps(r) + "\n" for r in history))
    return summary
