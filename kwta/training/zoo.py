"""The model zoo's recipes and the one command that rebuilds it (``kwta zoo build``).

Two tiers of the paper's structure (Sec. 4, Tables 1 and 2). The **CPU tier** (width 16)
keeps a CPU classroom interactive; the **paper tier** (width 32, ``-w32`` names, longer
schedules) comes within a few points of Table 1 and is trained on a CPU with native bf16
across sessions (``kwta zoo build --tier paper`` resumes the first unfinished model).
The CPU tier's six networks:

- ``relu-nat``: ReLU, natural training;
- ``kwta0.2-nat``: k-WTA γ = 0.2, natural training;
- ``kwta0.1-nat``: k-WTA γ = 0.1 by incremental fine-tuning (Sec. 2.2) of
  ``kwta0.2-nat``: γ lowered 0.2 → 0.1 in steps of 0.025, two passes each;
- ``relu-at`` and ``kwta0.1-at``: adversarial training at ε = 0.031 with fast
  AT (FGSM from a random start, α = 1.25ε; Wong, Rice, Kolter 2020). The
  k-WTA one starts from ``kwta0.1-nat``;
- ``lwta0.1-nat``: LWTA with groups of 10 (the same sparsity as k-WTA-0.1; Table 2's
  strongest other activation, App. D.3), natural training;
- ``kwta0.1-direct`` (built only with ``--only``): k-WTA-0.1 trained directly for as
  many passes as ``kwta0.1-nat`` took with its parent, the other half of Fig. 6.

The paper tier: ``relu-nat-w32``, ``kwta0.2-nat-w32``, ``kwta0.1-nat-w32`` (incremental from
``kwta0.2-nat-w32``), ``relu-at-w32`` and ``kwta0.1-at-w32`` (fast AT, warm-started from
their natural twins).

Every run uses the fast path (:mod:`kwta.nn.precision`), a one-cycle learning
rate (Nesterov SGD, weight decay 5e-4), label smoothing 0.1, random crop +
flip on all 50 000 training images. :func:`build` trains each model (resuming
from its per-pass checkpoint in ``work_dir``), evaluates it with the paper's
attacks and writes weights + card into ``out_dir``. With ``minutes`` it times
the first steps of each model and sizes the schedule to the budget.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import math
import os
import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from kwta import paper
from kwta.attacks.registry import DEFAULT_STANDARD
from kwta.data import CIFAR10Tensors, cifar10
from kwta.evaluation.adaptive import evaluate_adaptive
from kwta.evaluation.report import update_card
from kwta.evaluation.robust import evaluate
from kwta.models import build_model
from kwta.nn.precision import channels_last_safe, resolve_precision, to_channels_last
from kwta.training.checkpoints import checkpoint_dir
from kwta.training.config import TrainConfig
from kwta.training.epoch import TrainState, train_epoch
from kwta.training.loop import train
from kwta.training.schedules import epoch_plan
from kwta.utils import default_device
from kwta.zoo.card import ModelCard
from kwta.zoo.hub import list_pretrained, load_card, load_from_card, sha256_of
from kwta.zoo.summary import twin_of
from kwta.zoo.tiers import CPU_WIDTH, PAPER_WIDTH, TIERS

__all__ = [
    "COMMON",
    "CPU_WIDTH",
    "PAPER_WIDTH",
    "TIERS",
    "ZOO",
    "ZooRecipe",
    "apply_threads",
    "build",
    "default_work_dir",
    "fingerprint",
    "measure_pass_seconds",
    "recipe_config",
    "size_epochs",
    "tier_models",
]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ZooRecipe:
    """How one zoo model is trained.

    Attributes:
        name: Model name (file stem in ``pretrained/``).
        act: ``"relu"`` or ``"kwta"``.
        ratio: Final k-WTA γ.
        method: Training method of :mod:`kwta.training` (``"natural"`` or ``"fgsm"``).
        epochs: Main-phase passes at the default (CPU) budget.
        lr: Peak learning rate of the one-cycle schedule.
        parent: Zoo model whose trained weights this one starts from.
        incremental_from: γ0 of incremental fine-tuning (Sec. 2.2).
        incremental_delta: γ decrement per fine-tuning step.
        incremental_epochs: Passes per fine-tuning step.
        cost: Relative cost of one pass (ReLU natural = 1), to split a time budget.
        optional: Built only when named (``--only``): a comparison, not part of the zoo's
            default build.
        tier: ``"cpu"`` or ``"paper"`` (:data:`TIERS`): the ResNet-18 width.
    """

    name: str
    act: str
    ratio: float = 0.1
    method: str = "natural"
    epochs: int = 24
    lr: float = 0.1
    parent: str | None = None
    incremental_from: float | None = None
    incremental_delta: float = 0.025
    incremental_epochs: int = 2
    cost: float = 1.0
    optional: bool = False
    tier: str = "cpu"

    @property
    def width(self) -> int:
        """ResNet-18 width of the recipe's tier."""
        return TIERS[self.tier]


#: The zoo in build order (a parent always comes before its children).
ZOO: dict[str, ZooRecipe] = {
    r.name: r
    for r in (
        ZooRecipe("relu-nat", "relu", epochs=24),
        ZooRecipe("kwta0.2-nat", "kwta", ratio=0.2, epochs=24, cost=1.4),
        ZooRecipe(
            "kwta0.1-nat",
            "kwta",
            ratio=0.1,
            epochs=1,
            lr=0.05,
            parent="kwta0.2-nat",
            incremental_from=0.2,
            cost=1.4,
        ),
        ZooRecipe("relu-at", "relu", method="fgsm", epochs=15, cost=2.0),
        ZooRecipe(
            "kwta0.1-at",
            "kwta",
            ratio=0.1,
            method="fgsm",
            epochs=10,
            lr=0.05,
            parent="kwta0.1-nat",
            cost=2.8,
        ),
        # groups of TrainConfig.group_size = 10 channels: LWTA-0.1 (Table 2)
        ZooRecipe("lwta0.1-nat", "lwta", epochs=24, cost=1.2),
        # Fig. 6 at equal budget: k-WTA-0.1 trained directly for as many passes as
        # kwta0.1-nat took in all (kwta0.2-nat's 24, then its own 1 + 4 steps x 2)
        ZooRecipe("kwta0.1-direct", "kwta", ratio=0.1, epochs=33, cost=1.4, optional=True),
        # The paper tier (width 32): longer schedules; k-WTA learns slowly at first (a 3-pass
        # probe: ReLU 78.6 %, k-WTA-0.2 53.8 %), so its schedule is the longer one.
        ZooRecipe("relu-nat-w32", "relu", epochs=40, tier="paper"),
        ZooRecipe("kwta0.2-nat-w32", "kwta", ratio=0.2, epochs=60, cost=1.2, tier="paper"),
        ZooRecipe(
            "kwta0.1-nat-w32",
            "kwta",
            ratio=0.1,
            epochs=2,
            lr=0.05,
            parent="kwta0.2-nat-w32",
            incremental_from=0.2,
            incremental_epochs=3,
            cost=1.2,
            tier="paper",
        ),
        ZooRecipe(
            "relu-at-w32",
            "relu",
            method="fgsm",
            epochs=20,
            lr=0.05,
            parent="relu-nat-w32",
            cost=2.0,
            tier="paper",
        ),
        ZooRecipe(
            "kwta0.1-at-w32",
            "kwta",
            ratio=0.1,
            method="fgsm",
            epochs=15,
            lr=0.05,
            parent="kwta0.1-nat-w32",
            cost=2.4,
            tier="paper",
        ),
    )
}


#: Shared by every recipe (the modern CPU schedule; see the module docstring).
COMMON: dict[str, Any] = {
    "schedule": "onecycle",
    "warmup": 0.25,
    "nesterov": True,
    "label_smoothing": 0.1,
    "weight_decay": 5e-4,
    "momentum": 0.9,
    "batch_size": 128,
    "eps": paper.EPS,
    "amp": "auto",
    "channels_last": True,
}


def recipe_config(
    recipe: ZooRecipe,
    *,
    width: int | None = None,
    epochs: int | None = None,
    data: str | None = None,
    work_dir: str | Path = "runs/zoo",
    out_dir: str | Path = "pretrained",
    device: str | None = None,
    seed: int = 0,
    progress: bool | None = None,
) -> TrainConfig:
    """The :class:`TrainConfig` of a recipe (checkpoints and outputs in ``work_dir``).

    ``width`` overrides the tier's (smoke runs); ``None``: :attr:`ZooRecipe.width`.
    """
    init_from = init_sha = None
    if recipe.parent is not None:
        parent = Path(out_dir) / f"{recipe.parent}.safetensors"
        init_from = str(parent)
        card = Path(out_dir) / f"{recipe.parent}.json"
        init_sha = json.loads(card.read_text())["sha256"] if card.is_file() else None
    return TrainConfig(
        arch="resnet18",
        width=recipe.width if width is None else width,
        act=recipe.act,
        ratio=recipe.ratio,
        method=recipe.method,
        epochs=epochs if epochs is not None else recipe.epochs,
        lr=recipe.lr,
        incremental_from=recipe.incremental_from,
        incremental_delta=recipe.incremental_delta,
        incremental_epochs=recipe.incremental_epochs,
        data=data,
        seed=seed,
        device=device,
        out_dir=str(work_dir),
        name=recipe.name,
        init_from=init_from,
        init_sha256=init_sha,
        progress=progress,
        **COMMON,
    ).validate()


def default_work_dir() -> Path:
    """Where a zoo build keeps its checkpoints: ``$XDG_CACHE_HOME/kwta/zoo`` (``~/.cache``).

    Outside the repository, so a fresh work tree (a new session) still finds them.
    """
    cache = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(cache) / "kwta" / "zoo"


def tier_models(tier: str) -> list[str]:
    """The models a tier's build makes by default (its recipes less the optional ones)."""
    if tier not in TIERS:
        raise ValueError(f"unknown zoo tier {tier!r}; choose from {list(TIERS)}")
    return [n for n, r in ZOO.items() if r.tier == tier and not r.optional]


def apply_threads(threads_file: str | Path | None) -> int:
    """Set torch's CPU threads from ``threads_file`` (one positive integer) when it holds one.

    A long build re-reads the file before each model and every 20 steps, so whoever shares
    the machine can give the build both cores while nothing else runs and one while tests
    do. A missing, empty or malformed file leaves the count as it is.

    Returns:
        The thread count in force afterwards.
    """
    if threads_file is not None:
        try:
            wanted = int(Path(threads_file).read_text().strip())
        except (OSError, ValueError):
            wanted = 0
        if wanted > 0 and wanted != torch.get_num_threads():
            torch.set_num_threads(wanted)
            log.info("now on %d CPU thread(s) (from %s)", wanted, threads_file)
    return torch.get_num_threads()


def fingerprint(config: TrainConfig) -> str:
    """sha256 (16 hex digits) of everything that determines a model's weights."""
    fields = config.training_fields()  # run-only fields (paths, device, progress) excluded
    blob = json.dumps(fields, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:16]


def measure_pass_seconds(
    config: TrainConfig, data: CIFAR10Tensors, *, steps: int = 3, images: int | None = None
) -> float:
    """Seconds one pass over ``images`` (default: all of ``data``) would take.

    Times ``steps`` minibatches of the configured method on the training device
    (after one untimed warm-up minibatch) with a fresh model of the recipe.
    """

    device = default_device(config.device)
    model = build_model(config.arch, **config.arch_kwargs).to(device)
    if config.channels_last and channels_last_safe(model, device):
        to_channels_last(model)
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    state = TrainState(model=model, optimizer=opt)
    b = config.batch_size
    x = data.images[: b * (steps + 1)].to(device)
    y = data.labels[: b * (steps + 1)].to(device)
    amp = resolve_precision(config.amp, device)
    gen = torch.Generator().manual_seed(0)
    train_epoch(state, x[:b], y[:b], config, generator=gen, amp=amp)  # warm-up
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    t0 = time.perf_counter()
    train_epoch(state, x[b:], y[b:], config, generator=gen, amp=amp)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    per_step = (time.perf_counter() - t0) / max(1, math.ceil((len(y) - b) / b))
    n = images if images is not None else len(data)
    return per_step * math.ceil(n / b)


def size_epochs(config: TrainConfig, budget_s: float, pass_s: float) -> int:
    """Main-phase passes that fit ``budget_s`` after the fixed fine-tuning passes (≥ 1)."""
    fine_tune = sum(p.phase == "fine-tune" for p in epoch_plan(config))
    return max(1, math.floor(budget_s / max(pass_s, 1e-9)) - fine_tune)


def _status(recipe: ZooRecipe, card: dict[str, Any], width: int) -> str:
    tr = card["training"]
    resumes = tr.get("resumed_after_passes") or []
    return (
        f"zoo v2 ({recipe.tier} tier): ResNet-18 at width {width} "
        f"trained by `kwta zoo build` on {tr['device_name']} in {tr['wall_time_s'] / 60:.0f} min "
        f"({tr['epochs']['passes']} passes, {tr['method']}, one-cycle, label smoothing 0.1"
        + (f", started from {recipe.parent}" if recipe.parent else "")
        + (
            f"; resumed after pass {', '.join(map(str, resumes))} with the same schedule"
            if resumes
            else ""
        )
        + "). Not the paper's width-64, 80-epoch model; every number on this card was measured "
        "on this model."
    )


def _evaluate_adaptive(
    name: str,
    card_path: Path,
    out: Path,
    test_data: CIFAR10Tensors,
    n: int,
    device: str | None,
    progress: bool | None,
) -> dict[str, Any]:
    """The adaptive attacks on ``n`` images, the zoo's ReLU twin as transfer source."""

    model = load_from_card(card_path, device=device)
    cards = list_pretrained(out)
    twin_name = twin_of(cards, name)
    twin = load_from_card(out / cards[twin_name]["card_file"], device) if twin_name else None
    result = evaluate(model, test_data, attacks=(), n=min(n, len(test_data)), clean_n=1,
                      device=device)  # fmt: skip
    result["adaptive"] = evaluate_adaptive(
        model, test_data, n=min(n, len(test_data)), twin=twin, twin_name=twin_name,
        device=device, progress=bool(progress),
    )  # fmt: skip
    return update_card(
        card_path, result, command=f"python -m kwta evaluate --model {name} --attacks none "
        f"--adaptive --adaptive-n {n} --update-card",
    )  # fmt: skip


def build(
    names: Sequence[str] | None = None,
    *,
    data: str | None = None,
    out_dir: str | Path = "pretrained",
    work_dir: str | Path | None = None,
    device: str | None = None,
    tier: str = "cpu",
    width: int | None = None,
    minutes: float | None = None,
    epochs: int | None = None,
    subset: int | None = None,
    eval_n: int = 1000,
    clean_n: int | None = None,
    attacks: Sequence[str] | None = None,
    restarts: int = 5,
    adaptive_n: int = 0,
    seed: int = 0,
    progress: bool | None = None,
    threads_file: str | Path | None = None,
    on_model: Callable[[str, dict[str, Any]], None] | None = None,
) -> dict[str, dict[str, Any]]:
    """Train, evaluate and publish the zoo (or the models in ``names``), resumably.

    For each model, in :data:`ZOO` order (by default the models of ``tier``): if
    ``out_dir`` already holds its card
    with the same recipe fingerprint and an evaluation, it is skipped; else it
    is trained (continuing from ``work_dir/<name>.ckpt`` when a checkpoint
    exists), copied to ``out_dir``, and evaluated with the paper's attacks on
    ``eval_n`` test images (clean accuracy on ``clean_n``, default all), plus
    PGD-40 with ``restarts`` random starts (per-image worst case).

    Args:
        names: Models to build (their parents must be built or listed too).
        data: CIFAR-10 location (see :func:`kwta.data.cifar10`).
        out_dir: Where weights and cards go (``pretrained/``).
        work_dir: Checkpoints and intermediate outputs (default: :func:`default_work_dir`,
            outside the repository).
        device: Training/evaluation device (default: CUDA when present).
        tier: The tier built when ``names`` is empty (:data:`TIERS`).
        width: ResNet-18 width for every listed model (smoke runs); ``None``: each
            recipe's tier width (16 for the CPU tier, 32 for the paper tier).
        minutes: Total time budget for training the listed models; each one's
            share follows its ``cost × epochs``, and its epochs are sized from
            timed first steps. Ignored for a model with a checkpoint (its
            schedule is fixed).
        epochs: Main-phase passes for every listed model (overrides the recipes).
        subset: Train on a class-balanced subset (smoke runs).
        eval_n: Images for the attacks (0: skip the evaluation).
        clean_n: Images for the clean accuracy (``None``: the whole test split).
        attacks: Standard attacks (default: the paper's four).
        restarts: Random starts of the extra PGD-40 with restarts (0: skip).
        adaptive_n: Images for the adaptive attacks
            (:func:`~kwta.evaluation.adaptive.evaluate_adaptive`: Auto-PGD, Square,
            FD/EOT PGD, transfer from the ReLU twin); 0 skips them (on a 2-core CPU
            they take about an hour per 500 images).
        seed: Training seed (the evaluation subset is always ``seed=0``'s).
        progress: tqdm bars (``None``: when stderr is a terminal).
        threads_file: A file holding torch's CPU thread count, re-read before each model
            and every 20 training steps (:func:`apply_threads`).
        on_model: Called with ``(name, card)`` after each model is written.

    Returns:
        ``{name: card}`` of the listed models as written.
    """

    wanted = tier_models(tier) if not names else list(names)
    unknown = [n for n in wanted if n not in ZOO]
    if unknown:
        raise ValueError(f"unknown zoo model(s) {unknown}; choose from {list(ZOO)}")
    order = [n for n in ZOO if n in wanted]
    out = Path(out_dir)
    work = Path(work_dir) if work_dir is not None else default_work_dir()
    out.mkdir(parents=True, exist_ok=True)
    work.mkdir(parents=True, exist_ok=True)
    train_data = cifar10("train", data)
    test_data = cifar10("test", data)
    n_train = len(train_data) if subset is None else min(subset, len(train_data))
    shares = {n: ZOO[n].cost * (epochs or ZOO[n].epochs) for n in order}
    cards: dict[str, dict[str, Any]] = {}
    for name in order:
        recipe = ZOO[name]
        if recipe.parent is not None and not (out / f"{recipe.parent}.json").is_file():
            raise FileNotFoundError(
                f"{name} starts from {recipe.parent}, which is not built in {out}: "
                f"build it first (kwta zoo build --only {recipe.parent})"
            )

        def config_for(n_epochs: int | None, recipe: ZooRecipe = recipe) -> TrainConfig:
            cfg = recipe_config(
                recipe,
                width=width,
                epochs=n_epochs,
                data=data,
                work_dir=work,
                out_dir=out,
                device=device,
                seed=seed,
                progress=progress,
            )
            return dataclasses.replace(cfg, subset=subset).validate()

        ckpt_json = checkpoint_dir(work, name) / "checkpoint.json"
        n_epochs = epochs
        if ckpt_json.is_file():  # the schedule was fixed when the run started
            n_epochs = int(json.loads(ckpt_json.read_text())["config"]["epochs"])
        elif minutes is not None:
            cfg0 = config_for(n_epochs)
            budget = minutes * 60.0 * shares[name] / sum(shares.values())
            pass_s = measure_pass_seconds(cfg0, train_data, images=n_train)
            n_epochs = size_epochs(cfg0, budget, pass_s)
            log.info(
                "%s: %.1f s per pass, %.0f s budget -> %d main passes",
                name,
                pass_s,
                budget,
                n_epochs,
            )
        cfg = config_for(n_epochs)
        fp = fingerprint(cfg)
        card_path = out / f"{name}.json"
        existing = load_card(card_path) if card_path.is_file() else None
        done = existing is not None and existing.get("zoo", {}).get("fingerprint") == fp
        if not done:

            def on_step(i: int) -> None:
                if i % 20 == 0:
                    apply_threads(threads_file)

            apply_threads(threads_file)
            log.info("%s: training (%s)", name, "resuming" if ckpt_json.is_file() else "new")
            train(
                cfg,
                train_data=train_data,
                test_data=test_data,
                resume=ckpt_json.is_file(),
                on_step=on_step,
            )
            for suffix in (".safetensors", ".json"):
                shutil.copyfile(work / f"{name}{suffix}", out / f"{name}{suffix}")
            card = load_card(card_path)
            card["zoo"] = {
                "fingerprint": fp,
                "recipe": dataclasses.asdict(recipe) | {"width": cfg.width},
                "command": f"python -m kwta zoo build --tier {recipe.tier} --only {name}"
                + (f" --width {width}" if width is not None else ""),
            }
            card["status"] = _status(recipe, card, cfg.width)
            ModelCard.from_dict(card, where=f"card {card_path}").write(card_path)
            existing = card
        assert existing is not None
        if eval_n and "evaluation" not in existing:
            apply_threads(threads_file)
            model = load_from_card(card_path, device=device)
            result = evaluate(
                model,
                test_data,
                attacks=tuple(DEFAULT_STANDARD if attacks is None else attacks),
                n=eval_n,
                clean_n=clean_n,
                device=device,
                progress=bool(progress),
                restarts=restarts,
            )
            existing = update_card(
                card_path, result, command=f"python -m kwta evaluate --model {name} --n {eval_n}"
            )
        adaptive_done = (existing.get("metrics") or {}).get("adaptive", {}).get("n")
        if adaptive_n and adaptive_done != min(adaptive_n, len(test_data)):
            existing = _evaluate_adaptive(
                name,
                card_path,
                out,
                test_data,
                adaptive_n,
                device,
                progress,
            )
        cards[name] = existing
        if on_model is not None:
            on_model(name, existing)
        log.info("%s: done (sha256 %s…)", name, sha256_of(out / f"{name}.safetensors")[:16])
    return cards
