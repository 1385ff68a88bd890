"""A 20-minute lesson through the paper's argument and its rebuttal, in six steps.

1. What k-WTA does (Fig. 2); 2. it is discontinuous (Fig. 1); 3. PGD stalls on it
(Fig. 3a/b); 4. why: the loss surface (Fig. 5); 5. training is still fine (Fig. 3c);
6. adaptive attacks break it anyway (Tramèr et al., NeurIPS 2020).

Each step shows one result that must appear at once in a classroom, so the
heavy ones (steps 2-5) are computed ahead by :func:`compute_lesson` — ``kwta
lesson`` writes them to ``pretrained/lesson.json`` beside the models they were
computed on — and read back by :func:`read_lesson`, which refuses a file whose
models' sha256 no longer match the cards (the app then computes it once and
caches it). Step 1 is instant live; step 6 reads the cards.

The lesson image is one of the bundled test images (:func:`kwta.data.cifar10_sample`),
so a "try it yourself" link opens the full page on the same image when the app
runs on its bundled defaults.
"""

from __future__ import annotations

import os
import time
import urllib.parse
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from kwta import paper
from kwta.analysis.landscape import loss_landscape
from kwta.analysis.toy import toy_fit
from kwta.analysis.weights import LINE_ALPHAS, weight_line
from kwta.attacks.sign_gradient import pgd_linf
from kwta.data import CIFAR10_CLASSES, CIFAR10Tensors
from kwta.explorer.links import url_value
from kwta.explorer.runs import attack_with_trace
from kwta.zoo.results import model_refs, read_results, write_results

__all__ = [
    "LESSON_FILE",
    "LESSON_FORMAT",
    "STEPS",
    "LessonStep",
    "compute_lesson",
    "image_params",
    "lesson_image",
    "page_link",
    "read_lesson",
    "summarize_lesson",
    "write_lesson",
]

#: Version of the results file's layout; a file of another version is recomputed.
LESSON_FORMAT = 1

#: The results file's name, in the folder of the models it was computed on.
LESSON_FILE = "lesson.json"

#: The toy fit of step 2 (the 1-D toy page's defaults).
TOY: dict[str, Any] = {
    "n_points": 8,
    "width": 64,
    "depth": 2,
    "ratio": 0.1,
    "seed": 0,
    "steps": 2000,
}
#: PGD of step 3: the live-attack page's settings (ε, 40 steps of 0.001, no random start).
PGD: dict[str, Any] = {"eps": paper.EPS, "alpha": 0.001, "steps": 40}
#: The loss landscape of step 4: the CPU default of the landscape page (the paper: 50 x 50).
LANDSCAPE: dict[str, Any] = {"grid": 21, "span": 0.04, "seed": 0}
#: The weight-space line of step 5 (Fig. 3c) along the batch gradient, on 128 test images.
WEIGHT_LINE: dict[str, Any] = {"alphas": list(LINE_ALPHAS), "n": 128, "seed": 0}


@dataclass(frozen=True)
class LessonStep:
    """One step of the lesson.

    Attributes:
        key: Short name (``"jumps"``); the step's number is its place in :data:`STEPS`.
        title: Heading.
        source: Where it is in the paper (or after it).
        text: What to tell the class (Markdown, written here, never user text).
        question: A question for the class.
        page: The explorer page that shows it in full (``app/views/<page>.py``).
    """

    key: str
    title: str
    source: str
    text: str
    question: str
    page: str


STEPS: tuple[LessonStep, ...] = (
    LessonStep(
        "what",
        "What k-WTA does",
        "Sec. 2.1, Fig. 2",
        "k-WTA replaces every ReLU by one rule: **keep the k = ⌊γ·N⌋ largest activations of "
        "the whole layer, set the rest to zero**. ReLU keeps every positive value; max-pool and "
        "LWTA pick winners inside small groups; k-WTA lets the whole layer compete.",
        "If one input value grows a little, which outputs can change under ReLU, and which "
        "under k-WTA?",
        "overview",
    ),
    LessonStep(
        "jumps",
        "It is discontinuous",
        "Sec. 3, Fig. 1",
        "Fit the same 1-D curve with a small ReLU network and a k-WTA network. The ReLU fit is "
        "a continuous broken line; the k-WTA fit **jumps** wherever the set of winners "
        "changes — and in a real network those jumps are everywhere, very close together.",
        "What does a gradient tell you about a function that jumps between two nearby points?",
        "toy_fit",
    ),
    LessonStep(
        "pgd",
        "PGD stalls on it",
        "Sec. 4, Fig. 3a/b",
        "PGD, the standard white-box attack, follows the input gradient in small signed "
        "steps. Watch the ten logits as the perturbation grows: on the ReLU network the true "
        "class falls smoothly and another overtakes it; on the k-WTA network the logits "
        "**jitter** from step to step, because the gradient at one point says little about "
        "the next, and the attack can run out of ε before it gets anywhere.",
        "Is the k-WTA network really harder to fool, or is PGD just lost?",
        "attack",
    ),
    LessonStep(
        "landscape",
        "Why: the loss surface",
        "Sec. 4.3, Fig. 5",
        "The attacker's loss around the image, along the gradient-sign direction and a random "
        "one: smooth and climbing for ReLU, a **field of cliffs** for k-WTA. A gradient taken "
        "at one point says almost nothing about the loss one step away.",
        "If you could not use gradients, how else could you search this surface?",
        "landscape",
    ),
    LessonStep(
        "training",
        "Training is still fine",
        "Sec. 3, Theorem 2, Fig. 3c",
        "Yet the k-WTA network trains normally. The loss of a whole batch along a direction in "
        "**weight** space is smooth for both networks: a small weight change flips the "
        "winners of few inputs, and averaging over many inputs smooths the jumps away.",
        "Why does averaging over a batch help training but not an attacker, who attacks one image?",
        "patterns",
    ),
    LessonStep(
        "adaptive",
        "Adaptive attacks break it",
        "after the paper: Tramèr et al., NeurIPS 2020",
        "The robustness PGD reports is largely **gradient masking**: attacks that do not trust "
        "the local gradient — gradients estimated by finite differences over a neighbourhood, "
        "Auto-PGD, the black-box Square attack, or examples transferred from the ReLU twin — "
        "bring the k-WTA network's robust accuracy far down. Tramèr et al. took k-WTA from the "
        "paper's 50 % to 0.1 %.",
        "What should a defense paper report before claiming robustness?",
        "adaptive",
    ),
)


#: How many bundled test images :func:`lesson_image` looks at.
CANDIDATES = 64


def lesson_image(data: CIFAR10Tensors, models: Mapping[str, nn.Module]) -> tuple[int, str]:
    """The lesson's image and how it was chosen.

    Among the first :data:`CANDIDATES` test images that both models classify
    correctly, the first on which the lesson's PGD (:data:`PGD`) fools the ReLU
    model but not the k-WTA model — the contrast of Fig. 3 — else the first one
    both classify correctly (else image 0).

    Returns:
        ``(index into data, rule)``.
    """
    n = min(CANDIDATES, len(data))
    x, y = data.tensors(range(n))
    ok = torch.ones(n, dtype=torch.bool)
    with torch.no_grad():
        for model in models.values():
            dev = next(model.parameters()).device
            ok &= model(x.to(dev)).argmax(1).cpu() == y
    both = ok.nonzero().flatten()
    if len(both) == 0:
        return 0, "image 0 (no candidate is classified correctly by both models)"
    fooled = {}
    for key, model in models.items():
        dev = next(model.parameters()).device
        xs, ys = x[both].to(dev), y[both].to(dev)
        x_adv = pgd_linf(model, xs, ys, **PGD, random_start=False)  # as attack_with_trace
        with torch.no_grad():
            fooled[key] = (model(x_adv).argmax(1) != ys).cpu()
    contrast = (fooled["relu"] & ~fooled["kwta"]).nonzero().flatten()
    if len(contrast):
        return int(both[contrast[0]]), (
            f"the first of the first {n} bundled test images that both models classify "
            "correctly on which this PGD fools the ReLU model but not the k-WTA model"
        )
    return int(both[0]), f"the first of the first {n} bundled test images both classify correctly"


def compute_lesson(
    cards: Mapping[str, Mapping[str, Any]],
    models: Mapping[str, nn.Module],
    data: CIFAR10Tensors,
    *,
    callback: Callable[[int, int], None] | None = None,
) -> dict[str, Any]:
    """Compute the lesson's heavy results (steps 2-5) on a ReLU and a k-WTA model.

    Args:
        cards: ``{"relu": card, "kwta": card}`` of the two models.
        models: ``{"relu": model, "kwta": model}``, eval mode; not modified.
        data: Test images (the bundled sample, so links open the same image).
        callback: ``callback(done, total)`` after each of the seven computations.

    Returns:
        JSON-able results: ``format``, ``models`` (name, sha256), ``image`` (index,
        label, pixels as uint8 lists), ``toy``, ``pgd`` and ``landscape`` and
        ``weight_line`` per model, ``settings``, ``seconds``.
    """
    if set(models) != {"relu", "kwta"} or set(cards) != {"relu", "kwta"}:
        raise ValueError("the lesson needs exactly a 'relu' and a 'kwta' model")
    total, done = 7, 0
    start = time.perf_counter()

    def tick() -> None:
        nonlocal done
        done += 1
        if callback is not None:
            callback(done, total)

    index, rule = lesson_image(data, models)
    x, y = data.tensors([index])
    label = int(y[0])
    out: dict[str, Any] = {
        "format": LESSON_FORMAT,
        "models": model_refs(cards),
        "image": {
            "index": index,
            "label": label,
            "rule": rule,
            "source": data.source.split(":", 1)[0],
            "pixels": (x[0] * 255).round().to(torch.uint8).permute(1, 2, 0).tolist(),
        },
        "settings": {"toy": TOY, "pgd": PGD, "landscape": LANDSCAPE, "weight_line": WEIGHT_LINE},
        "toy": toy_fit(**TOY, n_dense=600).to_dict(),
        "pgd": {},
        "landscape": {},
        "weight_line": {},
    }
    tick()
    n = min(int(WEIGHT_LINE["n"]), len(data))
    xb, yb = data.tensors(data.balanced_indices(n, seed=0))
    for key, model in models.items():
        dev = next(model.parameters()).device
        run = attack_with_trace(model, x.to(dev), label, **PGD)
        out["pgd"][key] = {
            "logits": run.trace.logits[:, 0].tolist(),
            "linf": run.trace.linf[:, 0].tolist(),
            "pred": run.trace.pred[:, 0].tolist(),
        }
        tick()
        land = loss_landscape(model, x.to(dev), label, **LANDSCAPE)
        out["landscape"][key] = land.to_dict(directions=False)
        tick()
        line = weight_line(
            model,
            xb.to(dev),
            yb.to(dev),
            alphas=WEIGHT_LINE["alphas"],
            seed=int(WEIGHT_LINE["seed"]),
        )
        out["weight_line"][key] = line.to_dict()
        tick()
    out["seconds"] = round(time.perf_counter() - start, 2)
    return out


def write_lesson(results: Mapping[str, Any], directory: str | os.PathLike[str]) -> Path:
    """Write the results as ``<directory>/lesson.json`` (atomically); return the path."""
    return write_results(results, directory, LESSON_FILE)


def read_lesson(
    directory: str | os.PathLike[str], cards: Mapping[str, Mapping[str, Any]]
) -> dict[str, Any] | None:
    """The lesson results in ``directory`` if they were computed on exactly these models.

    Args:
        directory: The models' folder.
        cards: ``{"relu": card, "kwta": card}`` of the models the lesson should use.

    Returns:
        The results, or ``None`` when the file is missing, unreadable, of another
        format, or computed on other weights (another name or sha256).
    """
    return read_results(directory, LESSON_FILE, LESSON_FORMAT, cards)


def summarize_lesson(results: Mapping[str, Any]) -> dict[str, Any]:
    """The numbers docs/paper.md quotes from a lesson file.

    Returns:
        ``image`` (index), ``jumps`` (k-WTA, ReLU), and per model ``first_fooled``
        (first PGD step whose prediction is wrong, ``None``: never), ``final_correct``,
        ``roughness`` (mean |second difference| of the landscape along the gradient
        sign, over its range) and ``weight_loss`` (min, max of the weight-space line).
    """
    label = int(results["image"]["label"])
    toy = results["toy"]
    out: dict[str, Any] = {
        "image": int(results["image"]["index"]),
        "jumps": (len(toy["kwta_jumps"]["locations"]), len(toy["relu_jumps"]["locations"])),
    }
    for key in ("relu", "kwta"):
        pred = results["pgd"][key]["pred"]
        loss = torch.tensor(results["landscape"][key]["loss"], dtype=torch.float64)
        span = float(loss.max() - loss.min())
        second = (loss[2:] - 2 * loss[1:-1] + loss[:-2]).abs().mean()
        line = results["weight_line"][key]["loss"]
        out[key] = {
            "first_fooled": next((i for i, p in enumerate(pred) if p != label), None),
            "final_correct": pred[-1] == label,
            "roughness": float(second) / span if span > 0 else 0.0,
            "weight_loss": (min(line), max(line)),
        }
    return out


def page_link(page: str, params: Mapping[str, Any]) -> str:
    """A relative URL of the explorer's ``page`` with ``params`` written as the page reads
    them (:func:`kwta.explorer.links.url_value`): a step's "try it yourself" link."""
    return page + "?" + urllib.parse.urlencode({k: url_value(v) for k, v in params.items()})


def image_params(prefix: str, data: CIFAR10Tensors, index: int) -> dict[str, Any]:
    """The image picker's URL values (keys ``<prefix>_img/_cls/_nth``) that pick test image
    ``index`` of ``data`` by its class and its rank within the class."""
    label = int(data.labels[index])
    nth = [int(i) for i in (data.labels == label).nonzero().flatten()].index(index)
    return {f"{prefix}_img": "class", f"{prefix}_cls": CIFAR10_CLASSES[label], f"{prefix}_nth": nth}
