"""Gradient-masking indicators: is a defence robust, or does it only hide its gradient?

Xiao et al. (ICLR 2020, Sec. 3) argue that k-WTA defends *because* its
activation pattern changes discontinuously with the input, so the gradient a
white-box attacker computes is locally exact but globally useless. Athalye,
Carlini and Wagner (ICML 2018, Sec. 3) call this *gradient masking*
("obfuscated gradients") and list its symptoms; Tramèr, Carlini, Brendel and
Madry (NeurIPS 2020, Sec. 5.9 on k-WTA) and Croce & Hein (ICML 2020, the
AutoAttack "flags") check for them before trusting a robustness number. This
module measures five of them on real images:

``zero_gradients``
    Input gradients of the cross-entropy that are exactly zero (vanishing):
    an attacker following them cannot move (Athalye et al.; AutoAttack's
    ``check_zero_gradients``).
``loss_not_increasing``
    Along a standard PGD run the attacker's loss *drops* at many steps: the
    gradient does not point uphill even a step of ``alpha`` away. On a smooth
    (ReLU) network small sign-gradient steps raise the loss nearly every time.
``blackbox_beats_whitebox``
    A black-box attack (here the gradient-free Square attack or any given
    adversarial batch, e.g. a transfer from a ReLU twin or finite-difference
    PGD) breaks images that white-box PGD could not: the gradients mislead
    (Athalye et al., Sec. 3.1, "black-box attacks are better than white-box").
``noise_instability``
    Predictions that flip under uniform noise far smaller than ε (1/255 by
    default): the decision function is discontinuous at the data, which is
    what k-WTA's jumps (the paper's Fig. 1) look like from the input side.
``randomness``
    The same images evaluated twice give other logits: a randomised defence, which
    needs EOT (AutoAttack's ``check_randomized``: two runs with the same input that
    differ). Read on any model, imported ones included.

Each indicator has a threshold; :attr:`MaskingReport.suspected` is true when
any of them is flagged. The thresholds are set from measurements on the
shipped models (see :data:`THRESHOLDS`): they separate a ReLU network from its
k-WTA twin with a wide margin, but they are heuristics — a flag says "test
with adaptive attacks before believing the number", not "broken".
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

import torch
from torch import Tensor, nn

from kwta import paper
from kwta.attacks._core import (
    ProgressCallback,
    check_inputs,
    input_grad,
    is_correct,
    project_linf,
    traced,
    uniform_start,
)
from kwta.attacks.sign_gradient import pgd_linf
from kwta.attacks.square import square_linf

__all__ = [
    "THRESHOLDS",
    "Indicator",
    "MaskingReport",
    "masking_indicators",
]

log = logging.getLogger(__name__)


#: Flag an indicator when its value is above (``zero_gradients``,
#: ``loss_not_increasing``, ``blackbox_beats_whitebox``, ``noise_instability``)
#: these fractions. Measured with ``masking_indicators`` on 64 balanced test
#: images of the bundled sample (the clean-correct ones): the CPU stand-ins of
#: zoo v1 ``relu-nat`` / ``kwta0.1-nat`` gave 0 / 0 zero gradients, 0.00 / 0.39 of
#: PGD steps lowering the loss, 0.02 / 0.52 of images flipping under 1/255
#: noise; zoo v2's ``relu-nat`` / ``kwta0.1-nat`` / ``relu-at`` / ``kwta0.1-at``:
#: no zero gradients, 0.004 / 0.28 / 0 / 0.44 of PGD steps lowering the loss,
#: Square beating PGD on 0 / 0 / 0 / 0.30, 0.02 / 0.04 / 0 / 0.23 flipping.
THRESHOLDS: dict[str, float] = {
    "zero_gradients": 0.05,
    "loss_not_increasing": 0.10,
    "blackbox_beats_whitebox": 0.02,
    "noise_instability": 0.10,
    # any difference between two evaluations of the same images: a randomised model
    "randomness": 0.0,
}


_TITLES = {
    "zero_gradients": "Zero input gradients",
    "loss_not_increasing": "PGD loss not increasing",
    "blackbox_beats_whitebox": "Black-box beats white-box",
    "noise_instability": "Unstable under tiny noise",
    "randomness": "Randomised (two evaluations differ)",
}


@dataclass(frozen=True)
class Indicator:
    """One symptom of gradient masking.

    Attributes:
        key: Identifier (a key of :data:`THRESHOLDS`).
        title: Short human-readable name.
        value: The measured fraction in [0, 1].
        threshold: Flag when ``value > threshold``.
        flagged: ``value > threshold``.
        detail: One sentence saying what was measured, with counts.
    """

    key: str
    title: str
    value: float
    threshold: float
    flagged: bool
    detail: str


@dataclass(frozen=True)
class MaskingReport:
    """The indicators of :func:`masking_indicators` for one model and batch.

    Attributes:
        indicators: The five :class:`Indicator` objects, in a fixed order.
        n: Images in the batch.
        n_correct: Of those, classified correctly when clean (the ones examined).
        eps: L∞ radius of the attacks.
        whitebox_robust: Correct images that white-box PGD did not break.
        blackbox_robust: Correct images that the black-box attack did not break.
        blackbox: Which black-box attack was compared.
    """

    indicators: tuple[Indicator, ...]
    n: int
    n_correct: int
    eps: float
    whitebox_robust: int
    blackbox_robust: int
    blackbox: str

    @property
    def suspected(self) -> bool:
        """True when any indicator is flagged: check with adaptive attacks."""
        return any(i.flagged for i in self.indicators)

    def __getitem__(self, key: str) -> Indicator:
        for ind in self.indicators:
            if ind.key == key:
                return ind
        raise KeyError(key)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able dict (indicators as a list of dicts, plus ``suspected``)."""
        out = asdict(self)
        out["suspected"] = self.suspected
        return out


def _indicator(key: str, count: int, total: int, what: str) -> Indicator:
    value = count / total if total else 0.0
    threshold = THRESHOLDS[key]
    return Indicator(
        key=key,
        title=_TITLES[key],
        value=value,
        threshold=threshold,
        flagged=value > threshold,
        detail=f"{count} of {total} {what}",
    )


def masking_indicators(
    model: nn.Module,
    x: Tensor,
    y: Tensor,
    *,
    eps: float = paper.EPS,
    pgd_steps: int = 20,
    pgd_alpha: float = 0.003,
    noise: float = 1 / 255,
    noise_draws: int = 8,
    blackbox_adv: Tensor | None = None,
    blackbox_name: str = "given",
    square_queries: int = 300,
    generator: torch.Generator | None = None,
    callback: ProgressCallback | None = None,
) -> MaskingReport:
    """Measure the five gradient-masking indicators on a batch of real images.

    Only images the model classifies correctly when clean are examined (the
    others say nothing about the attack). The white-box reference is PGD with
    the cross-entropy loss (``pgd_steps`` steps of ``pgd_alpha``, random start);
    the black-box attack is ``blackbox_adv`` when given, else
    :func:`kwta.attacks.square.square_linf` with ``square_queries`` queries.

    Args:
        model: Classifier taking pixels in [0, 1], in eval mode (not modified).
        x: ``(B, 3, H, W)`` clean images in [0, 1].
        y: ``(B,)`` labels.
        eps: L∞ radius for both attacks.
        pgd_steps: White-box PGD steps.
        pgd_alpha: White-box PGD step size.
        noise: Half-width of the uniform noise of ``noise_instability``.
        noise_draws: Noise draws per image; an image counts as unstable if any
            draw changes its prediction.
        blackbox_adv: Adversarial images from a black-box attack (same shape as
            ``x``, inside the ε-ball), or ``None`` to run Square.
        blackbox_name: Name of the attack behind ``blackbox_adv``, for the report.
        square_queries: Query budget of the Square attack when it is run here.
        generator: Source of all randomness (PGD start, noise, Square).
        callback: ``callback(done, total)`` after each phase step.

    Returns:
        A :class:`MaskingReport`.

    Raises:
        ValueError: Bad shapes, pixels outside [0, 1], a negative ``eps`` or
            ``noise``, ``noise_draws`` < 1, or ``blackbox_adv`` outside the ε-ball.
    """
    check_inputs(x, y, eps)
    if noise < 0:
        raise ValueError(f"noise must be >= 0, got {noise}")
    if noise_draws < 1:
        raise ValueError(f"noise_draws must be >= 1, got {noise_draws}")
    if blackbox_adv is not None:
        if blackbox_adv.shape != x.shape:
            raise ValueError(
                f"blackbox_adv has shape {tuple(blackbox_adv.shape)}, expected {tuple(x.shape)}"
            )
        blackbox_adv = blackbox_adv.detach().to(x.device)
        if float((blackbox_adv - x).abs().amax()) > eps + 1e-5:
            raise ValueError("blackbox_adv leaves the ε-ball around x")
    x = x.detach()
    y = y.detach().to(device=x.device, dtype=torch.long)
    total_units = 1 + pgd_steps + noise_draws + (square_queries if blackbox_adv is None else 0)
    done = [0]

    def advance(units: int = 1) -> None:
        done[0] += units
        if callback is not None:
            callback(min(done[0], total_units), total_units)

    def offset(start: int) -> Callable[[int, int], None]:
        def inner(step: int, _steps: int) -> None:
            done[0] = start + step
            if callback is not None:
                callback(min(done[0], total_units), total_units)

        return inner

    ok = is_correct(model, x, y)
    xs, ys = x[ok], y[ok]
    n_ok = int(ok.sum())

    # 1. zero gradients of the cross-entropy at the clean image
    if n_ok:
        _, grad = input_grad(model, xs, ys, "ce")
        zero = int((grad.flatten(1).abs().sum(dim=1) == 0).sum())
    else:
        zero = 0
    advance()
    indicators = [_indicator("zero_gradients", zero, n_ok, "correct images have ∇ₓCE = 0")]

    # 2. loss along white-box PGD
    if n_ok:
        x_pgd, trace = traced(pgd_linf)(
            model,
            xs,
            ys,
            eps=eps,
            alpha=pgd_alpha,
            steps=pgd_steps,
            loss="ce",
            generator=generator,
            callback=offset(done[0]),
        )
        alive = trace.correct()[1:-1] if pgd_steps > 1 else trace.correct()[:0]
        drops = (trace.loss[2:] < trace.loss[1:-1]) & alive
        n_drop, n_steps = int(drops.sum()), int(alive.sum())
        white_ok = is_correct(model, x_pgd, ys)
    else:
        n_drop = n_steps = 0
        white_ok = torch.zeros(0, dtype=torch.bool, device=x.device)
    done[0] = 1 + pgd_steps
    indicators.append(
        _indicator(
            "loss_not_increasing",
            n_drop,
            n_steps,
            "PGD steps (on images not yet broken) lowered the loss",
        )
    )

    # 3. black-box vs white-box, on the same correct images
    if n_ok:
        if blackbox_adv is None:
            blackbox_name = f"Square ({square_queries} queries)"
            x_bb = square_linf(
                model,
                xs,
                ys,
                eps=eps,
                queries=square_queries,
                generator=generator,
                callback=offset(done[0]),
            )
        else:
            x_bb = blackbox_adv.detach().to(x.device)[ok]
        black_ok = is_correct(model, project_linf(x_bb, xs, eps), ys)
    else:
        black_ok = torch.zeros(0, dtype=torch.bool, device=x.device)
        if blackbox_adv is None:
            blackbox_name = f"Square ({square_queries} queries)"
    done[0] = total_units - noise_draws
    beats = int((white_ok & ~black_ok).sum())
    indicators.append(
        _indicator(
            "blackbox_beats_whitebox",
            beats,
            n_ok,
            f"correct images were broken by {blackbox_name} but survived white-box PGD",
        )
    )

    # 4. prediction flips under tiny noise
    flips = torch.zeros(n_ok, dtype=torch.bool, device=x.device)
    for _ in range(noise_draws):
        if n_ok:
            flips |= ~is_correct(model, (xs + uniform_start(xs, noise, generator)).clamp(0, 1), ys)
        advance()
    indicators.append(
        _indicator(
            "noise_instability",
            int(flips.sum()),
            n_ok,
            f"correct images changed class under uniform noise of ±{noise * 255:.2g}/255",
        )
    )
    # 5. randomness: every image evaluated twice (AutoAttack's check_randomized)
    with torch.no_grad():
        differ = int((model(x) != model(x)).flatten(1).any(dim=1).sum())
    indicators.append(
        _indicator("randomness", differ, len(y), "images gave other logits when evaluated again")
    )
    report = MaskingReport(
        indicators=tuple(indicators),
        n=len(y),
        n_correct=n_ok,
        eps=eps,
        whitebox_robust=int(white_ok.sum()),
        blackbox_robust=int(black_ok.sum()),
        blackbox=blackbox_name,
    )
    log.info(
        "masking indicators: %s",
        ", ".join(f"{i.key}={i.value:.3f}{'!' if i.flagged else ''}" for i in report.indicators),
    )
    return report
