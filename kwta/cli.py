"""Command line: ``kwta train`` and ``kwta evaluate`` (also ``python -m kwta``).

A thin argparse layer over :func:`kwta.train.train` and
:func:`kwta.evaluate.evaluate`; see their modules for the paper's settings
(Sec. 2.2, Sec. 4, App. D.1). Messages go to stderr through :mod:`logging`;
stdout carries only the final table (or JSON with ``--json -``).

Examples::

    # App. D.1, natural training of k-WTA-0.1 with incremental fine-tuning (Sec. 2.2):
    kwta train --act kwta --ratio 0.1 --incremental-from 0.2 --epochs 50 --lr-drop-epoch 50 \\
        --data ~/cifar10 --out runs/
    # PGD adversarial training of a ReLU ResNet-18:
    kwta train --method pgd --data ~/cifar10 --out runs/
    # Table 1 row: clean accuracy, PGD/MIM/C&W/DeepFool and A_rob on 1000 test images:
    kwta evaluate --card runs/resnet18-w64-kwta0.1-natural-s0.json --data ~/cifar10 --json out.json
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import math
import shlex
import sys
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

__all__ = ["build_parser", "main"]

log = logging.getLogger("kwta")


# --------------------------------------------------------------------------- argument types


def _number(
    cast: Callable[[str], Any], ok: Callable[[Any], bool], what: str
) -> Callable[[str], Any]:
    """An argparse type: ``cast(text)`` that must satisfy ``ok``, else "expected <what>"."""

    def parse(text: str) -> Any:
        try:
            value = cast(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}") from None
        if not ok(value):
            raise argparse.ArgumentTypeError(f"expected {what}, got {text}")
        return value

    parse.__name__ = what  # argparse names the type in its messages
    return parse


_ratio = _number(float, lambda v: 0.0 < v <= 1.0, "a sparsity ratio in (0, 1]")
_positive_int = _number(int, lambda v: v >= 1, "a positive integer")
_nonneg_int = _number(int, lambda v: v >= 0, "a non-negative integer")
_positive_float = _number(float, lambda v: math.isfinite(v) and v > 0, "a positive number")
_nonneg_float = _number(float, lambda v: math.isfinite(v) and v >= 0, "a non-negative number")


def _int_or_all(text: str) -> int | None:
    if text.lower() == "all":
        return None
    value: int = _positive_int(text)
    return value


def _existing_path(text: str) -> str:
    if not Path(text).expanduser().exists():
        raise argparse.ArgumentTypeError(f"{text} does not exist")
    return text


def _names(text: str, known: Sequence[str], what: str) -> list[str]:
    """A comma-separated list of names from ``known`` (``none``: the empty list)."""
    if text.strip().lower() == "none":
        return []
    names = [t.strip().lower() for t in text.split(",") if t.strip()]
    if not names:
        raise argparse.ArgumentTypeError(f"name at least one {what}, or 'none'")
    unknown = [t for t in names if t not in known]
    if unknown:
        raise argparse.ArgumentTypeError(
            f"unknown {what}(s) {', '.join(unknown)}; choose from {', '.join(sorted(known))}"
        )
    return list(dict.fromkeys(names))


def _attack_list(text: str) -> list[str]:
    from .attacks import ATTACKS

    return _names(text, list(ATTACKS), "attack")


def _adaptive_list(text: str) -> list[str]:
    from .suite import ADAPTIVE_ATTACKS

    return _names(text, list(ADAPTIVE_ATTACKS), "adaptive attack")


def _device(text: str) -> str:
    import torch

    try:
        dev = torch.device(text)
    except (RuntimeError, ValueError) as err:
        raise argparse.ArgumentTypeError(f"bad device {text!r}: {err}") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise argparse.ArgumentTypeError(f"device {text!r} requested but CUDA is not available")
    return text


#: Options whose value is a path: cards record only its last name (no machine's folders).
PATH_OPTIONS = frozenset({"--data", "--json", "--card", "--out", "--work", "--init-from"})


def portable_command(argv: Sequence[str]) -> str:
    """The command line for a card, each path option's value reduced to its last name."""
    out: list[str] = []
    for i, arg in enumerate(argv):
        flag, eq, value = arg.partition("=")
        if eq and flag in PATH_OPTIONS:
            out.append(f"{flag}={Path(value).name or value}")
        elif i > 0 and argv[i - 1] in PATH_OPTIONS and arg != "-":
            out.append(Path(arg).name or arg)
        else:
            out.append(arg)
    return shlex.join(out)


# --------------------------------------------------------------------------- parser


def build_parser() -> argparse.ArgumentParser:
    """The ``kwta`` argument parser (sub-commands ``train`` and ``evaluate``)."""
    from .train import DEFAULT_PGD_ALPHA, METHODS

    parser = argparse.ArgumentParser(
        prog="kwta",
        description=(
            "k-WTA Explorer: train and evaluate the networks of Xiao, Zhong, Zheng (ICLR 2020)."
        ),
    )
    sub = parser.add_subparsers(dest="command", metavar="{train,evaluate,zoo,doctor}")
    sub.required = True

    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--data",
        type=_existing_path,
        metavar="PATH",
        help="CIFAR-10: cifar-10-batches-py folder, image folder or tarball "
        "(default: $KWTA_DATA, else the bundled sample)",
    )
    common.add_argument(
        "--device",
        type=_device,
        default=None,
        help="torch device (default: CUDA when present, else CPU)",
    )
    common.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    common.add_argument(
        "--batch-size", type=_positive_int, default=256, help="batch size (default 256)"
    )
    common.add_argument(
        "-q", "--quiet", action="store_true", help="no progress bars, warnings only"
    )
    common.add_argument("-v", "--verbose", action="store_true", help="debug messages")

    t = sub.add_parser(
        "train",
        parents=[common],
        help="train a network (App. D.1)",
        description=(
            "Train a CIFAR-10 ResNet-18 with ReLU, k-WTA or LWTA activations (App. D.1): SGD, "
            "momentum 0.9, weight decay 5e-4 (kuangliu/pytorch-cifar; not stated in the paper), "
            "LR 0.1 then 0.01 after 50 of 80 epochs (scaled proportionally for other --epochs). "
            "Writes <out>/<name>.safetensors, its JSON card and a checkpoint every epoch."
        ),
    )
    t.add_argument("--arch", default="resnet18", choices=["resnet18"], help="architecture")
    t.add_argument("--width", type=_positive_int, default=64, help="first-stage channels (64)")
    t.add_argument("--act", default="relu", choices=["relu", "kwta", "lwta"], help="activation")
    t.add_argument(
        "--ratio",
        type=_ratio,
        default=0.1,
        help="k-WTA sparsity ratio γ in (0, 1]; the final γ1 with --incremental-from (0.1)",
    )
    t.add_argument("--group-size", type=_positive_int, default=10, help="LWTA group size (10)")
    t.add_argument(
        "--method",
        default="natural",
        choices=list(METHODS),
        help="natural | pgd (Madry AT) | trades | free (free AT) | fgsm (fast AT, Wong et al.)",
    )
    t.add_argument(
        "--epochs",
        type=_positive_int,
        default=80,
        help="main-phase epochs (80); free AT makes ceil(epochs/m) passes",
    )
    t.add_argument("--lr", type=_positive_float, default=0.1, help="initial learning rate (0.1)")
    t.add_argument(
        "--lr-drop-epoch",
        type=_nonneg_int,
        default=None,
        help="drop the LR x0.1 after this epoch (default round(epochs*50/80))",
    )
    t.add_argument("--momentum", type=_nonneg_float, default=0.9, help="SGD momentum (0.9)")
    t.add_argument("--weight-decay", type=_nonneg_float, default=5e-4, help="weight decay (5e-4)")
    t.add_argument("--eps", type=_positive_float, default=0.031, help="training attack ε (0.031)")
    t.add_argument(
        "--pgd-steps",
        type=_positive_int,
        default=None,
        help="PGD iterations (8 for pgd, 10 for trades)",
    )
    t.add_argument(
        "--pgd-alpha",
        type=_positive_float,
        default=DEFAULT_PGD_ALPHA,
        help=f"PGD step size ({DEFAULT_PGD_ALPHA})",
    )
    t.add_argument("--trades-beta", type=_nonneg_float, default=6.0, help="TRADES β = 1/λ (6)")
    t.add_argument("--free-replays", type=_positive_int, default=8, help="free AT replays m (8)")
    t.add_argument(
        "--incremental-from",
        type=_ratio,
        default=None,
        metavar="GAMMA0",
        help="incremental fine-tuning (Sec. 2.2): train at γ0 first, then lower γ to --ratio",
    )
    t.add_argument(
        "--incremental-delta",
        type=_positive_float,
        default=0.005,
        help="decrement δ of γ per fine-tuning step (0.005)",
    )
    t.add_argument(
        "--incremental-epochs",
        type=_positive_int,
        default=2,
        help="epochs per fine-tuning step (2)",
    )
    t.add_argument("--no-augment", action="store_true", help="no random crop / flip")
    t.add_argument(
        "--subset",
        type=_positive_int,
        default=None,
        metavar="N",
        help="train on a class-balanced subset of N images",
    )
    t.add_argument(
        "--eval-n",
        type=_int_or_all,
        default=None,
        metavar="N|all",
        help="test images for the card's held-out clean accuracy (default all)",
    )
    t.add_argument("--no-eval", action="store_true", help="skip the held-out clean accuracy")
    t.add_argument(
        "--precision",
        default="auto",
        choices=["auto", "bf16", "fp16", "fp32"],
        help="autocast precision (auto: bf16 on CUDA and on CPUs with native bf16, else fp32)",
    )
    t.add_argument("--no-channels-last", action="store_true", help="keep the NCHW layout")
    t.add_argument(
        "--schedule",
        default="step",
        choices=["step", "onecycle"],
        help="learning-rate schedule: the paper's step drop, or one-cycle with peak --lr",
    )
    t.add_argument(
        "--warmup", type=_positive_float, default=0.25, help="one-cycle warm-up fraction (0.25)"
    )
    t.add_argument("--nesterov", action="store_true", help="Nesterov momentum")
    t.add_argument("--label-smoothing", type=_nonneg_float, default=0.0, help="label smoothing (0)")
    t.add_argument(
        "--init-from",
        type=_existing_path,
        default=None,
        metavar="PATH.safetensors",
        help="start from these weights (e.g. a k-WTA-0.2 model to fine-tune down to 0.1)",
    )
    t.add_argument("--out", required=True, metavar="DIR", help="output folder")
    t.add_argument(
        "--name",
        default=None,
        help="model name / file stem (default e.g. resnet18-w64-kwta0.1-natural-s0)",
    )
    t.add_argument(
        "--weights-dtype",
        default="float16",
        choices=["float16", "bfloat16", "float32"],
        help="dtype of the saved weights (float16)",
    )
    t.add_argument("--resume", action="store_true", help="continue from <out>/<name>.ckpt")

    t.set_defaults(sub_parser=t)

    d = sub.add_parser(
        "doctor",
        help="self-check: PyTorch/CUDA, GPU usability, models' sha256, data, job limits",
        description="Check what the explorer runs on; exit 1 if anything is broken.",
    )
    d.add_argument("-q", "--quiet", action="store_true", help=argparse.SUPPRESS)
    d.add_argument("-v", "--verbose", action="store_true", help=argparse.SUPPRESS)
    d.set_defaults(sub_parser=d)

    z = sub.add_parser(
        "zoo",
        help="rebuild the model zoo (train, evaluate, publish; resumable)",
        description="The model zoo: `kwta zoo build` trains, evaluates and writes every model.",
    )
    zsub = z.add_subparsers(dest="zoo_command", metavar="{build}")
    zsub.required = True
    zb = zsub.add_parser(
        "build",
        parents=[common],
        help="train + evaluate + write the zoo's models (resumes from checkpoints)",
        description=(
            "Train each zoo model with its recipe (kwta.zoo.ZOO), evaluate it with the paper's "
            "attacks and write weights + card. Resumable: a checkpoint per pass in --work; "
            "re-running continues where it stopped and skips finished models."
        ),
    )
    from .zoo import CPU_WIDTH, ZOO

    zb.add_argument(
        "--only",
        type=lambda text: _names(text, list(ZOO), "zoo model"),
        default=None,
        metavar="NAME[,NAME]",
        help=f"build only these ({', '.join(ZOO)})",
    )
    zb.add_argument("--width", type=_positive_int, default=CPU_WIDTH, help="ResNet-18 width (16)")
    zb.add_argument(
        "--minutes",
        type=_positive_float,
        default=None,
        help="training time budget for all listed models; epochs sized from timed first steps",
    )
    zb.add_argument(
        "--epochs", type=_positive_int, default=None, help="main-phase passes (default: recipes)"
    )
    zb.add_argument("--subset", type=_positive_int, default=None, help="train on N images (smoke)")
    zb.add_argument(
        "--eval-n", type=_nonneg_int, default=1000, help="attack images (1000; 0: no evaluation)"
    )
    zb.add_argument(
        "--clean-n", type=_int_or_all, default=None, metavar="N|all", help="clean images (all)"
    )
    zb.add_argument(
        "--restarts", type=_nonneg_int, default=5, help="extra PGD-40 random starts (5)"
    )
    zb.add_argument(
        "--adaptive-n",
        type=_nonneg_int,
        default=0,
        help="images for the adaptive attacks (0: skip; ~1 h per 500 images on 2 CPU cores)",
    )
    zb.add_argument(
        "--attacks",
        type=_attack_list,
        default=None,
        metavar="NAME[,NAME]",
        help="standard attacks of the evaluation (default: pgd,mim,cw,deepfool)",
    )
    zb.add_argument(
        "--out", default="pretrained", metavar="DIR", help="weights + cards (pretrained)"
    )
    zb.add_argument(
        "--work", default="runs/zoo", metavar="DIR", help="checkpoints (runs/zoo, git-ignored)"
    )
    zb.set_defaults(sub_parser=zb)

    e = sub.add_parser(
        "evaluate",
        parents=[common],
        help="clean and robust accuracy, A_rob (Table 1)",
        description=(
            "Clean accuracy on the test split and robust accuracy per attack with the paper's "
            "App. D.1 settings on a fixed, class-balanced, seeded subset of --n test images. "
            "A_rob is the worst attack's robust accuracy (Table 1); the stricter per-image "
            "worst case (an image counts only if it survives every attack) is reported beside it."
        ),
    )
    which = e.add_mutually_exclusive_group(required=True)
    which.add_argument(
        "--model", metavar="NAME", help="a pretrained model's name (looked up among the cards)"
    )
    which.add_argument("--card", type=_existing_path, metavar="PATH.json", help="a model card")
    e.add_argument(
        "--attacks",
        type=_attack_list,
        default=["pgd", "mim", "cw", "deepfool"],
        help="comma-separated attacks, or 'none' (default pgd,mim,cw,deepfool)",
    )
    e.add_argument(
        "--n", type=_positive_int, default=1000, help="robust-evaluation subset size (1000)"
    )
    e.add_argument(
        "--clean-n",
        type=_int_or_all,
        default=None,
        metavar="N|all",
        help="images for the clean accuracy (default all)",
    )
    e.add_argument("--eps", type=_nonneg_float, default=0.031, help="ℓ∞ radius (0.031)")
    e.add_argument(
        "--adaptive",
        action="store_true",
        help=(
            "also run standard PGD, the adaptive attacks and the transfer from the ReLU twin on "
            "an --adaptive-n subset (beyond the paper: Tramèr et al. 2020, AutoAttack)"
        ),
    )
    e.add_argument(
        "--adaptive-n",
        type=_positive_int,
        default=100,
        help="adaptive-evaluation subset size (100)",
    )
    e.add_argument(
        "--adaptive-attacks",
        type=_adaptive_list,
        default=None,
        metavar="LIST",
        help="comma-separated adaptive attacks (default apgd-ce,apgd-dlr,square,fd-pgd,eot-pgd)",
    )
    e.add_argument(
        "--twin",
        default=None,
        metavar="NAME|none",
        help=(
            "pretrained ReLU model whose PGD examples are transferred (default: the ReLU model "
            "trained the same way, for a pretrained k-WTA model; 'none': no transfer attack)"
        ),
    )
    e.add_argument(
        "--json", metavar="OUT.json", default=None, help="write the result as JSON ('-': stdout)"
    )
    e.add_argument(
        "--update-card",
        action="store_true",
        help="write the metrics into the model's card (weights untouched)",
    )
    e.set_defaults(sub_parser=e)
    return parser


@contextlib.contextmanager
def _logging_to_stderr(quiet: bool, verbose: bool) -> Iterator[None]:
    """Send the ``kwta`` loggers' messages to stderr for the duration of one command."""
    level = logging.DEBUG if verbose else logging.WARNING if quiet else logging.INFO
    logger = logging.getLogger("kwta")
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    old_level = logger.level
    logger.addHandler(handler)
    logger.setLevel(level)
    try:
        yield
    finally:
        logger.removeHandler(handler)
        logger.setLevel(old_level)


def _progress(quiet: bool) -> bool:
    return not quiet and sys.stderr.isatty()


def _cmd_train(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    from .data import DataSourceError
    from .train import TrainConfig, train

    if args.incremental_from is not None and args.act != "kwta":
        parser.error("--incremental-from needs --act kwta (incremental fine-tuning, Sec. 2.2)")
    if args.incremental_from is not None and args.incremental_from < args.ratio:
        parser.error(
            f"--incremental-from ({args.incremental_from}) must be >= --ratio ({args.ratio})"
        )
    config = TrainConfig(
        arch=args.arch,
        width=args.width,
        act=args.act,
        ratio=args.ratio,
        group_size=args.group_size,
        method=args.method,
        epochs=args.epochs,
        batch_size=args.batch_size,
        lr=args.lr,
        lr_drop_epoch=args.lr_drop_epoch,
        momentum=args.momentum,
        weight_decay=args.weight_decay,
        eps=args.eps,
        pgd_steps=args.pgd_steps,
        pgd_alpha=args.pgd_alpha,
        trades_beta=args.trades_beta,
        free_replays=args.free_replays,
        incremental_from=args.incremental_from,
        incremental_delta=args.incremental_delta,
        incremental_epochs=args.incremental_epochs,
        augment=not args.no_augment,
        data=args.data,
        subset=args.subset,
        seed=args.seed,
        device=args.device,
        amp=args.precision,
        channels_last=not args.no_channels_last,
        schedule=args.schedule,
        warmup=args.warmup,
        nesterov=args.nesterov,
        label_smoothing=args.label_smoothing,
        init_from=args.init_from,
        eval_n=0 if args.no_eval else args.eval_n,
        out_dir=args.out,
        name=args.name,
        weights_dtype=args.weights_dtype,
        progress=_progress(args.quiet),
    )
    try:
        config.validate()
    except ValueError as err:
        parser.error(str(err))
    try:
        _model, card = train(config, resume=args.resume)
    except (DataSourceError, FileNotFoundError, ValueError) as err:
        log.error("%s", err)
        return 1
    m = card.get("metrics", {})
    data = card["training"]["data"]
    lines = [
        f"model: {card['name']}",
        f"weights: {Path(args.out) / card['weights']} "
        f"(sha256 {card['sha256'][:16]}…, {card['dtype']})",
        f"card: {Path(args.out) / (card['name'] + '.json')}",
        f"data: {data['source']} ({data['train_images']} images)",
    ]
    if "train_loss" in m:
        lines.append(f"final train loss {m['train_loss']:.4f}, accuracy {m['train_accuracy']:.2%}")
    if "test_clean_accuracy" in m:
        lines.append(
            f"held-out clean accuracy {m['test_clean_accuracy']:.2%} "
            f"on {m['test_clean_n']} test images"
        )
    lines.append(
        f"wall time {card['training']['wall_time_s']:.1f}s on {card['training']['device_name']}"
    )
    sys.stdout.write("\n".join(lines) + "\n")
    return 0


def _twin_name(
    args: argparse.Namespace,
    parser: argparse.ArgumentParser,
    cards: dict[str, dict[str, Any]] | None,
) -> str | None:
    """The ReLU twin for the transfer attack: ``--twin``, else the zoo's match, else none."""
    from .explore import twin_of
    from .hub import list_pretrained, pretrained_dir

    if args.twin is not None and args.twin.lower() == "none":
        return None
    available = list_pretrained()
    if args.twin is not None:
        if args.twin not in available:  # a name is looked up, never used as a path
            parser.error(
                f"--twin: no pretrained model named {args.twin!r} in {pretrained_dir()}; "
                f"available: {', '.join(sorted(available)) or 'none'}"
            )
        if args.twin == args.model:
            parser.error("--twin: a model cannot be its own transfer source")
        return str(args.twin)
    if cards is None or args.model is None:
        return None
    return twin_of(cards, args.model)


def _cmd_evaluate(
    args: argparse.Namespace, parser: argparse.ArgumentParser, argv: Sequence[str]
) -> int:
    from .data import DataSourceError, cifar10
    from .evaluate import evaluate, evaluate_adaptive, format_table, update_card
    from .hub import WeightsError, load_from_card, pretrained_dir
    from .hub import list_pretrained as cards_all
    from .utils import default_device

    device = default_device(args.device)
    if args.model is not None:
        cards = cards_all()
        if args.model not in cards:  # a name is looked up, never used as a path
            parser.error(
                f"--model: no pretrained model named {args.model!r} in {pretrained_dir()}; "
                f"available: {', '.join(sorted(cards)) or 'none'}"
            )
        card_path = pretrained_dir() / cards[args.model]["card_file"]
        title = f"model: {args.model}"
    else:
        card_path = Path(args.card).expanduser()
        if card_path.suffix != ".json":
            parser.error(f"--card: expected a .json model card, got {card_path.name}")
        title = f"card: {card_path}"
    try:
        model = load_from_card(card_path, device)
        data = cifar10("test", args.data)
    except (WeightsError, DataSourceError) as err:
        log.error("%s", err)
        return 1
    if args.n > len(data):
        log.warning(
            "--n %d is more than the %d test images available; using all", args.n, len(data)
        )
    result: dict[str, Any] = evaluate(
        model,
        data,
        attacks=args.attacks,
        n=min(args.n, len(data)),
        clean_n=args.clean_n,
        batch_size=args.batch_size,
        eps=args.eps,
        seed=args.seed,
        device=device,
        progress=_progress(args.quiet),
    )
    if args.adaptive:
        twin_name = _twin_name(args, parser, cards if args.model is not None else None)
        twin = None
        if twin_name is not None:
            try:
                twin_card = pretrained_dir() / cards_all()[twin_name]["card_file"]
                twin = load_from_card(twin_card, device)
            except WeightsError as err:
                log.error("%s", err)
                return 1
        result["adaptive"] = evaluate_adaptive(
            model,
            data,
            attacks=args.adaptive_attacks,
            n=min(args.adaptive_n, len(data)),
            twin=twin,
            twin_name=twin_name,
            batch_size=args.batch_size,
            eps=args.eps,
            seed=args.seed,
            device=device,
            progress=_progress(args.quiet),
        )
    command = portable_command(["kwta", *argv])
    result["model"] = {"name": args.model, "card": str(card_path)}
    result["command"] = command
    if args.update_card:
        update_card(card_path, result, command=command)
        log.info("metrics written into %s (weights unchanged)", card_path)
    text = json.dumps(result, indent=2) + "\n"
    if args.json == "-":
        sys.stdout.write(text)
    else:
        if args.json is not None:
            out = Path(args.json).expanduser()
            out.parent.mkdir(parents=True, exist_ok=True)
            out.write_text(text)
            log.info("wrote %s", out)
        sys.stdout.write(format_table(result, title))
    return 0


def _cmd_zoo(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    from .data import DataSourceError
    from .hub import WeightsError
    from .zoo import build

    def report(name: str, card: dict[str, Any]) -> None:
        m = card.get("metrics", {})
        clean = m.get("clean_accuracy", m.get("test_clean_accuracy"))
        pgd = (m.get("robust_accuracy") or {}).get("pgd")
        restarts = (m.get("pgd_restarts") or {}).get("accuracy")
        sys.stdout.write(
            f"{name}: clean {clean if clean is None else f'{clean:.2%}'}"
            + (f", PGD-40 {pgd:.1%}" if pgd is not None else "")
            + (
                f", PGD-40 x{m['pgd_restarts']['starts']} {restarts:.1%}"
                if restarts is not None
                else ""
            )
            + f", trained {card['training']['wall_time_s'] / 60:.1f} min\n"
        )
        sys.stdout.flush()

    try:
        build(
            args.only,
            data=args.data,
            out_dir=args.out,
            work_dir=args.work,
            device=args.device,
            width=args.width,
            minutes=args.minutes,
            epochs=args.epochs,
            subset=args.subset,
            eval_n=args.eval_n,
            clean_n=args.clean_n,
            restarts=args.restarts,
            adaptive_n=args.adaptive_n,
            attacks=args.attacks,
            seed=args.seed,
            progress=_progress(args.quiet),
            on_model=report,
        )
    except (DataSourceError, FileNotFoundError, ValueError, WeightsError) as err:
        log.error("%s", err)
        return 1
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``kwta`` / ``python -m kwta``.

    Returns:
        0 on success, 1 when the data or weights are unusable. Bad arguments
        exit through argparse with code 2 (:class:`SystemExit`).
    """
    args_list = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    args = parser.parse_args(args_list)
    sub: argparse.ArgumentParser = args.sub_parser
    with _logging_to_stderr(args.quiet, args.verbose):
        if args.command == "train":
            return _cmd_train(args, sub)
        if args.command == "zoo":
            return _cmd_zoo(args, sub)
        if args.command == "doctor":
            from .doctor import format_report, run_checks

            checks = run_checks()
            sys.stdout.write(format_report(checks) + "\n")
            return 1 if any(c.status == "fail" for c in checks) else 0
        return _cmd_evaluate(args, sub, args_list)
