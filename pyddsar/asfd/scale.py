"""The ASFD scaling search of SPEC section 6 on a pyddsar data set.

1. Supernet training: :class:`~pyddsar.asfd.supernet.ScalingSupernet` over the genes, one uniformly
   sampled single path per SGD step (channels sliced; lr 0.01 x batch / 16 unless given, linear
   warm-up over a tenth of the steps, at most 500). The first ``warmup_fraction`` of the steps run
   at the maximum width (other genes sampled); after that the width cap descends through the channel
   choices (:func:`~pyddsar.asfd.supernet.channel_cap`) and the width is sampled uniformly under it.
   The supernet trains on the weight + architecture parts of the 9:9:2 split of the training images.
2. Genetic search (:func:`~pyddsar.asfd.supernet.genetic_search`: mutation + crossover, top-k kept)
   with the fitness

       fitness(g) = AP_minival(g) - max(0, latency_ms(g) / X - 1)

   where ``AP_minival`` in [0, 1] is the mini-validation AP of the extracted subnet (the 2/20 part
   of the split, letterboxed to ``size``) and ``latency_ms`` the median measured latency of the
   subnet on the current device at ``latency_resolution`` (batch 1). A path within the budget X is
   not penalised; each multiple of X beyond it costs one whole unit of AP, so with a small X the
   fastest paths win whatever their AP.
3. Several budgets X_0 < X_1 < ... give a family D0, D1, ... (ASFD's D0..D6) from the one supernet:
   one genetic search per budget, each path's latency and AP measured once for all of them.
"""

from __future__ import annotations

import json
import math
import os
import random
from dataclasses import asdict, dataclass, replace
from typing import Optional, Sequence, Tuple, Union

import torch

from .._atomic import torch_save, write_text
from .._validate import integer, real
from .autofa import AutoFAE
from .supernet import Genes, ScalingSpace, ScalingSupernet, channel_cap, genetic_search, measure_latency_ms
from ..benchmark import device_name
from ..model_file import save_model
from .train import (batch_loss, batches, check_device, load_train_dataset, minival_ap, split_indices, to_device,
                    warmup_factor, warmup_steps, weights_lr)


def latency_penalty(latency_ms: float, budget_ms: float) -> float:
    """``max(0, latency / budget - 1)`` (see the module docstring)."""
    if not budget_ms > 0:
        raise ValueError(f"the latency budget must be positive, got {budget_ms}")
    return max(0.0, latency_ms / budget_ms - 1.0)


@dataclass
class ScaleConfig:
    data: str
    latency_ms: Union[float, Sequence[float]]  # one budget, or several: a family D0, D1, ... (ascending)
    out: str = "runs/asfd-scale"
    population: int = 50
    iterations: int = 50
    top_k: int = 10
    supernet_steps: int = 1000
    warmup_fraction: float = 0.2
    neck: Optional[str] = None        # autofae.json / autofae.pt of the neck search
    backbones: Tuple[str, ...] = ("resnet18", "resnet34", "resnet50")
    module_counts: Tuple[int, ...] = (1, 2, 3)
    head_convs: Tuple[int, ...] = (1, 2, 3, 4)
    channels: Tuple[int, ...] = (32, 48, 64, 96, 128)
    base_width: int = 64
    size: int = 256
    latency_resolution: Tuple[int, int] = (640, 480)  # (width, height)
    latency_runs: int = 5
    batch: int = 4
    lr: Optional[float] = None        # SGD of the supernet; None: 0.01 x batch / 16 (train.default_lr)
    seed: int = 0
    box_loss: str = "smooth_l1"
    device: str = "cpu"               # where the supernet trains and latency is measured

    def budgets(self) -> Tuple[float, ...]:
        """The latency budgets in ascending order (ValueError unless positive, finite and distinct)."""
        values = self.latency_ms if isinstance(self.latency_ms, (list, tuple)) else (self.latency_ms,)
        budgets = [real(v, "--latency-ms", low=0, low_open=True) for v in values]
        if not budgets or len(set(budgets)) != len(budgets):
            raise ValueError(f"--latency-ms needs distinct budgets, got {list(values)}")
        return tuple(sorted(budgets))

    def validate(self) -> None:
        self.budgets()
        weights_lr(self.lr, self.batch)
        for name in ("supernet_steps", "base_width", "size", "latency_runs", "batch", "top_k"):
            setattr(self, name, integer(getattr(self, name), name, low=1))
        self.population = integer(self.population, "population", low=2)
        self.iterations = integer(self.iterations, "iterations", low=0)
        if not 0 <= self.warmup_fraction <= 1:
            raise ValueError("warmup_fraction must be in [0, 1]")
        if len(self.latency_resolution) != 2 or min(self.latency_resolution) < 32:
            raise ValueError(f"latency_resolution must be (width, height) >= 32, got {self.latency_resolution}")
        if not self.data or not os.path.isdir(self.data):
            raise ValueError(f"no dataset folder at {self.data}")
        check_device(self.device)


def _genes_dict(g: Genes) -> dict:
    return {"backbone": g.backbone, "num_modules": g.num_modules, "skip_fe": list(g.skip_fe),
            "head_convs": g.head_convs, "channels": g.channels}


def genes_from_dict(d: dict) -> Genes:
    return Genes(str(d["backbone"]), int(d["num_modules"]), tuple(bool(s) for s in d["skip_fe"]),
                 int(d["head_convs"]), int(d["channels"]))


def scale_search(cfg: ScaleConfig, log=print, progress=None) -> dict:
    """Train the supernet, run the genetic search per budget and write ``supernet.pt`` and, per chosen
    path, ``genes.json`` (its latency / AP / FLOPs / parameters and every evaluated path), ``subnet.pt``,
    ``model.pt`` and ``detector.json``: under ``cfg.out`` for one budget, under ``cfg.out/D0``,
    ``D1``, ... (ascending budgets) plus ``family.json`` for several. Returns the member's summary
    (one budget) or the family's.

    ``progress``, when given, is called as ``progress(done, total, phase=..., **info)``: after every
    supernet step (phase ``"supernet"``, info ``loss``, ``cap``) and during each genetic search
    (phase ``"search"`` or ``"search D0"``, ...: iterations done of ``iterations + 1`` rankings, info
    ``best`` fitness and ``paths`` measured so far, also after each newly measured path)."""
    from ..models.complexity import complexity
    from .neck_search import load_autofae_spec

    cfg.validate()
    space = ScalingSpace(tuple(cfg.backbones), tuple(cfg.module_counts), tuple(cfg.head_convs), tuple(cfg.channels))
    if cfg.neck:
        spec = load_autofae_spec(cfg.neck)
    else:  # no searched neck given: the AutoFAE at initialisation (first choices, equal aggregation)
        spec = AutoFAE(max(space.channels), 6, "between").spec()
    os.makedirs(cfg.out, exist_ok=True)
    torch.manual_seed(cfg.seed)
    dataset = load_train_dataset(cfg.data, cfg.size, cfg.seed)
    w_idx, a_idx, m_idx = split_indices(len(dataset), (9, 9, 2), cfg.seed)
    dev = torch.device(cfg.device)
    net = ScalingSupernet(space, spec, cfg.base_width).to(dev, memory_format=torch.channels_last)
    params = list(net.parameters())
    lr = weights_lr(cfg.lr, cfg.batch)
    opt = torch.optim.SGD(params, lr=lr, momentum=0.9, weight_decay=1e-4)
    warmup = warmup_steps(cfg.supernet_steps)
    rng = random.Random(cfg.seed)
    it = batches(dataset, list(w_idx) + list(a_idx), cfg.batch, cfg.seed)
    widest = max(space.channels)
    warm = int(cfg.supernet_steps * cfg.warmup_fraction)
    net.train()
    for step in range(cfg.supernet_steps):
        cap = channel_cap(step, cfg.supernet_steps, space, cfg.warmup_fraction)
        genes = space.sample(rng, cap)
        if step < warm:
            genes = replace(genes, channels=widest)
        for group in opt.param_groups:
            group["lr"] = lr * warmup_factor(step, warmup)
        images, boxes, ignore = next(it)
        losses = batch_loss(lambda x: net(x, genes), to_device(images, dev), boxes, ignore, cfg.box_loss)
        opt.zero_grad(set_to_none=True)
        losses["loss"].backward()
        torch.nn.utils.clip_grad_norm_(params, 10.0)
        opt.step()
        if not math.isfinite(float(losses["loss"].detach())):
            raise ValueError(f"supernet training diverged at step {step + 1}")
        if progress is not None:
            progress(step + 1, cfg.supernet_steps, phase="supernet", loss=float(losses["loss"].detach()), cap=cap)
        if (step + 1) % max(1, cfg.supernet_steps // 10) == 0 or step + 1 == cfg.supernet_steps:
            log(f"supernet step {step + 1}/{cfg.supernet_steps}  width cap {cap}  "
                f"loss {float(losses['loss'].detach()):.4f}  path: {genes.describe()}")
    torch_save({"format": "pyddsar-asfd-supernet", "config": asdict(cfg), "state_dict": net.state_dict()},
                os.path.join(cfg.out, "supernet.pt"))

    net.eval()
    minival = [dataset.samples[i] for i in m_idx]
    w, h = cfg.latency_resolution
    probe = torch.zeros(1, 3, h, w, device=dev)
    measured = {}  # a path's latency and AP do not depend on the budget: measured once for the family

    def measure(g: Genes) -> dict:
        if g not in measured:
            sub = net.subnet(g).eval()
            measured[g] = {"genes": _genes_dict(g), "description": g.describe(),
                           "latency_ms": measure_latency_ms(sub, probe, warmup=1, runs=cfg.latency_runs),
                           "minival_ap": minival_ap(sub, minival, cfg.size, device=cfg.device)}
        return measured[g]

    budgets = cfg.budgets()
    common = {
        "fitness_formula": "minival_ap - max(0, latency_ms / latency_budget_ms - 1)",
        "latency_resolution": [w, h], "device": device_name(dev), "torch_threads": torch.get_num_threads(),
        "neck_spec": cfg.neck or "AutoFAE at initialisation",
        "space": {"backbones": list(space.backbones), "module_counts": list(space.module_counts),
                  "head_convs": list(space.head_convs), "channels": list(space.channels)},
        "split": {"supernet": len(w_idx) + len(a_idx), "minival": len(m_idx)}, "config": asdict(cfg),
    }
    members = []
    for i, budget in enumerate(budgets):
        name = f"D{i}" if len(budgets) > 1 else None
        phase = f"search {name}" if name else "search"
        position = [0]  # rankings done in this search

        def fitness(g: Genes, budget=budget) -> float:
            new = g not in measured
            m = measure(g)
            if new and progress is not None:
                progress(position[0], cfg.iterations + 1, phase=phase, paths=len(measured))
            return m["minival_ap"] - latency_penalty(m["latency_ms"], budget)

        def ranked(done, total, best, mean, phase=phase, position=position):
            position[0] = done
            if progress is not None:
                progress(done, total, phase=phase, best=best, paths=len(measured))

        result = genetic_search(space, fitness, cfg.population, cfg.iterations, min(cfg.top_k, cfg.population),
                                seed=cfg.seed, progress=ranked)
        best = result.best
        sub = net.subnet(best).eval()
        cx = complexity(sub, (w, h))
        chosen = dict(measured[best], fitness=result.fitness, flops=cx.flops, params=cx.params)
        evaluated = [dict(measured[g], fitness=fitness(g)) for g in result.scored]
        summary = {"format": "pyddsar-asfd-scale", "member": name, "chosen": chosen, "latency_budget_ms": budget,
                   **common, "history": [list(r) for r in result.history], "evaluated": evaluated}
        out = os.path.join(cfg.out, name) if name else cfg.out
        _write_member(out, summary, best, sub)
        if name:
            log(f"{name} (budget {budget} ms): {chosen['description']}, {chosen['latency_ms']:.2f} ms, "
                f"mini-val AP {chosen['minival_ap']:.4f}")
        members.append(summary)
    if len(members) == 1:
        return members[0]
    family = {"format": "pyddsar-asfd-family", **common,
              "members": [{"name": m["member"], "latency_budget_ms": m["latency_budget_ms"], **m["chosen"]}
                          for m in members],
              "measured_paths": len(measured)}
    write_text(os.path.join(cfg.out, "family.json"), json.dumps(family, indent=1))
    return family


def _write_member(out: str, summary: dict, genes: Genes, sub) -> None:
    """``genes.json``, ``subnet.pt``, ``model.pt`` (a pyddsar model file of the chosen single path, for
    ``pyddsar detect`` / ``eval`` / ``train --init``) and ``detector.json`` (its config) under ``out``."""
    os.makedirs(out, exist_ok=True)
    write_text(os.path.join(out, "genes.json"), json.dumps(summary, indent=1))
    torch_save({"format": "pyddsar-asfd-subnet", "genes": _genes_dict(genes), "state_dict": sub.state_dict()},
               os.path.join(out, "subnet.pt"))
    save_model(sub, os.path.join(out, "model.pt"))
    write_text(os.path.join(out, "detector.json"), json.dumps(sub.config.to_dict(), indent=1))
