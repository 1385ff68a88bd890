"""A result as a short Python script: the same call through the public API, printing the
same numbers (the "Python" download beside every JSON result).

The script is written from the result's provenance (:mod:`kwta.explorer.provenance`),
the way a researcher would write it: load the model (its sha256 checked), take the image,
make the one library call with every setting spelled out, print the summary numbers of
:attr:`kwta.explorer.actions.PageAction.summary` under the same names.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from kwta.analysis.masking import THRESHOLDS
from kwta.explorer.actions import LANDSCAPE_BATCH
from kwta.explorer.provenance import Provenance

__all__ = ["python_script", "script_prints"]


@dataclass(frozen=True)
class _Call:
    """One action's library call and what its script prints.

    Attributes:
        module: Where the function lives.
        func: The function.
        var: The name of its result in the script.
        prints: ``(name, expression)``: the summary's names, in its order.
        extra: Keywords after the settings (that do not change the result).
        imports: Further names the call needs from :attr:`module`.
        more_imports: Further import lines the script needs.
        generator: The ``seed`` setting is passed as a seeded ``torch.Generator``.
        lines: The call as its own lines (for actions that make two calls), from the
            settings; the default is ``var = func(model, x, label, **settings)``.
    """

    module: str
    func: str
    var: str
    prints: tuple[tuple[str, str], ...]
    extra: str = ""
    imports: tuple[str, ...] = ()
    more_imports: tuple[str, ...] = ()
    generator: bool = False
    lines: Callable[[Mapping[str, Any]], list[str]] | None = None


def _run_prints(run: str) -> tuple[tuple[str, str], ...]:
    return (
        ("clean prediction", f"{run}.clean_pred"),
        ("adversarial prediction", f"{run}.adv_pred"),
        ("attack succeeded", f"{run}.success"),
        ("first misclassified at step", f"{run}.first_misclassified"),
        ("final linf", f"{run}.linf"),
    )


_LANDSCAPE = _Call(
    "kwta.analysis.landscape",
    "loss_landscape",
    "ls",
    (
        ("clean loss", "ls.clean_loss"),
        ("lowest loss", "float(ls.loss.min())"),
        ("highest loss", "float(ls.loss.max())"),
    ),
    f"batch_size={LANDSCAPE_BATCH}",
)


def _patterns_lines(s: Mapping[str, Any]) -> list[str]:
    layer = _literal(s["layer"]) if s["layer"] else "next(iter(activation_layers(model, x)))"
    return [
        f"winners = winner_map(model, x, {layer}, eps={s['eps']!r}, seed={s['seed']!r})",
        "# the pattern's change against ε, as trained and at other γ (k-WTA models only)",
        f"ratios = {tuple(s['ratios'])!r} if get_ratio(model) is not None else ()",
        f"changes = pattern_change_sweep(model, x, ratios, n_dirs={s['n_dirs']!r}, "
        f"seed={s['seed']!r})",
    ]


_CALLS: dict[str, _Call] = {
    "gamma": _Call(
        "kwta.analysis.weights",
        "gamma_sweep",
        "sweep",
        (
            ("best clean accuracy", "float(sweep.clean_accuracy.max())"),
            ("at gamma", "float(sweep.ratios[sweep.clean_accuracy.argmax()])"),
            ("lowest clean accuracy", "float(sweep.clean_accuracy.min())"),
        ),
    ),
    "patterns": _Call(
        "kwta.explorer.patterns",
        "winner_map",
        "winners",
        (
            ("winners on x", "winners.n_winners"),
            ("units changed", "winners.n_changed"),
            (
                "pattern changed at the largest eps (as trained, mean over layers)",
                'float(changes["as trained"].changed_fraction[-1].mean())',
            ),
        ),
        imports=("activation_layers", "pattern_change_sweep"),
        more_imports=("from kwta.nn.activations import get_ratio",),
        lines=_patterns_lines,
    ),
    "weights": _Call(
        "kwta.analysis.weights",
        "weight_line",
        "line",
        (("lowest loss", "float(line.loss.min())"), ("highest loss", "float(line.loss.max())")),
        "alphas=LINE_ALPHAS",
        imports=("LINE_ALPHAS",),
    ),
    "masking": _Call(
        "kwta.analysis.masking",
        "masking_indicators",
        "report",
        (
            ("correctly classified", "report.n_correct"),
            ("gradient masking suspected", "report.suspected"),
            *((key, f'report["{key}"].value') for key in THRESHOLDS),
        ),
        more_imports=("import torch",),
        generator=True,
    ),
    "attack": _Call("kwta.explorer.runs", "attack_with_trace", "run", _run_prints("run")),
    "adaptive": _Call(
        "kwta.explorer.adaptive",
        "adaptive_attack_with_trace",
        "run",
        (*_run_prints("run"), ("queries", "run.queries")),
    ),
    "attack_path": _Call(
        "kwta.explorer.paths",
        "attack_path",
        "path",
        (
            *_run_prints("path.run"),
            ("pattern changed at the last step", "float(path.changed[-1])"),
        ),
    ),
    "landscape": _LANDSCAPE,
    "landscape50": _LANDSCAPE,
    "toy": _Call(
        "kwta.analysis.toy",
        "toy_fit",
        "fit",
        (
            ("k-WTA jumps", "len(fit.kwta_jumps)"),
            ("ReLU jumps", "len(fit.relu_jumps)"),
            ("k-WTA train MSE", "fit.kwta_loss"),
            ("ReLU train MSE", "fit.relu_loss"),
        ),
    ),
}


def script_prints(action: str) -> list[str]:
    """The names a script of ``action`` prints, in order (``[]``: no script yet)."""
    call = _CALLS.get(action)
    return [name for name, _ in call.prints] if call else []


def _literal(value: object) -> str:
    """A setting as Python source: strings in double quotes, tuples as tuples."""
    if isinstance(value, str):
        return json.dumps(value)
    return repr(value)


def _model_lines(p: Provenance) -> tuple[list[str], list[str]]:
    if p.model is None:
        return [], []
    return ["from kwta.zoo.hub import list_pretrained, load_pretrained"], [
        f"MODEL, SHA256 = {_literal(p.model.name)}, {_literal(p.model.sha256)}",
        'if list_pretrained()[MODEL]["sha256"] != SHA256:',
        '    raise SystemExit(f"{MODEL} here has other weights than the result")',
        'model = load_pretrained(MODEL, "cpu")  # checks the file against its card\'s sha256',
    ]


def _image_lines(p: Provenance) -> tuple[list[str], list[str]]:
    img = p.image
    if img is None:
        return [], []
    if img.pixels is not None:
        return ["import base64", "import torch"], [
            "# the uploaded image's 8-bit pixels, (3, 32, 32)",
            f'PIXELS = "{img.pixels}"',
            "raw = bytearray(base64.b64decode(PIXELS))",
            "x = torch.frombuffer(raw, dtype=torch.uint8).reshape(1, 3, 32, 32).float() / 255",
            f"label = {img.label}",
        ]
    imports, source = _dataset_lines(img.bundled, str(img.dataset))
    return imports, [
        source,
        f"x, y = data.tensors([{img.index}])",
        "label = int(y[0])",
        f"digest = hashlib.sha256(data.images[{img.index}].numpy().tobytes()).hexdigest()",
        f'assert digest == "{img.sha256}", "not the recorded image"',
    ]


def _dataset_lines(bundled: bool, dataset: str) -> tuple[list[str], str]:
    """The imports and the line that load the test split a result's images came from."""
    if bundled:
        return ["import hashlib", "from kwta.data import cifar10_sample"], (
            'data = cifar10_sample("test")  # the bundled sample'
        )
    return ["import hashlib", "from kwta.data import cifar10"], (
        f'data = cifar10("test")  # $KWTA_DATA: the copy {dataset} names'
    )


def _batch_lines(p: Provenance) -> tuple[list[str], list[str]]:
    b = p.batch
    if b is None:
        return [], []
    imports, source = _dataset_lines(b.bundled, b.dataset)
    return imports, [
        source,
        f"idx = data.balanced_indices({b.n}, seed={b.seed})  # {b.n} class-balanced images",
        "xs, ys = data.tensors(idx)",
        "raw = data.images[idx].numpy().tobytes() + data.labels[idx].numpy().tobytes()",
        f'assert hashlib.sha256(raw).hexdigest() == "{b.sha256}", "not the recorded images"',
    ]


def _imports(lines: list[str]) -> list[str]:
    """Standard library, then torch, then kwta, each group sorted, a blank line between."""
    groups: list[list[str]] = [[], [], []]
    for line in dict.fromkeys(lines):
        name = line.split()[1]
        groups[2 if name.startswith("kwta") else 1 if name.startswith("torch") else 0].append(line)
    out: list[str] = []
    for g in groups:
        if g:
            out += [*sorted(g), ""]
    return out


def python_script(p: Provenance) -> str:
    """A self-contained script that reruns ``p``'s computation and prints its summary.

    Raises:
        ValueError: No script for this action yet.
    """
    call = _CALLS.get(p.action)
    if call is None:
        raise ValueError(f"no Python script for action {p.action!r} yet")
    head = (["model", "xs", "ys"] if p.batch else ["model", "x", "label"]) if p.model else []
    settings = [
        f"generator=torch.Generator().manual_seed({v})"
        if k == "seed" and call.generator
        else f"{k}={_literal(v)}"
        for k, v in p.settings.items()
    ]
    args = ", ".join([*head, *settings, *([call.extra] if call.extra else [])])
    model_imports, model_body = _model_lines(p)
    image_imports, image_body = _image_lines(p)
    batch_imports, batch_body = _batch_lines(p)
    data_body = image_body or batch_body
    body = [*model_body, "", *data_body, ""] if model_body or data_body else []
    names = ", ".join(sorted((*call.imports, call.func)))
    imports = [
        *image_imports,
        *batch_imports,
        *model_imports,
        f"from {call.module} import {names}",
        *call.more_imports,
    ]
    lines = [
        '"""Reproduces a k-WTA Explorer result outside the app.',
        "",
        f"{p.page_action.page}: {p.page_action.what}; made {p.date} on {p.device}",
        f"({p.device_name}), kwta {p.library}, torch {p.torch}, {p.precision}.",
        "Run it where the kwta package is installed (a checkout: pip install -e .);",
        "`kwta reproduce RESULT.json` compares every recorded number.",
        '"""',
        "",
        *_imports(imports),
        *body,
        *(call.lines(p.settings) if call.lines else [f"{call.var} = {call.func}({args})"]),
        *(f'print("{name}:", {expr})' for name, expr in call.prints),
    ]
    return "\n".join(lines).replace("\n\n\n", "\n\n") + "\n"
