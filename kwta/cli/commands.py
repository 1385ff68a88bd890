"""What each sub-command does, and :func:`main`, the entry point."""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from kwta.cli.options import portable_command
from kwta.cli.parser import build_parser

log = logging.getLogger("kwta")


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
    from kwta.data import DataSourceError
    from kwta.training.config import TrainConfig
    from kwta.training.loop import train

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
    if "clean_accuracy" in m:
        lines.append(
            f"held-out clean accuracy {m['clean_accuracy']:.2%} on {m['clean_n']} test images"
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
    from kwta.zoo.hub import list_pretrained, pretrained_dir
    from kwta.zoo.summary import twin_of

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
    from kwta.data import DataSourceError, cifar10
    from kwta.evaluation.adaptive import evaluate_adaptive
    from kwta.evaluation.report import format_table, update_card
    from kwta.evaluation.robust import evaluate
    from kwta.utils import default_device
    from kwta.zoo.hub import WeightsError, load_from_card, pretrained_dir
    from kwta.zoo.hub import list_pretrained as cards_all

    if args.restarts and "pgd" not in args.attacks:
        parser.error("--restarts repeats PGD-40: it needs pgd among --attacks")
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
        restarts=args.restarts,
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
    from kwta.data import DataSourceError
    from kwta.training.zoo import build
    from kwta.zoo.hub import WeightsError

    def report(name: str, card: dict[str, Any]) -> None:
        m = card.get("metrics", {})
        clean = m.get("clean_accuracy")
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
            tier=args.tier,
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
            threads_file=args.threads_file,
            on_model=report,
        )
    except (DataSourceError, FileNotFoundError, ValueError, WeightsError) as err:
        log.error("%s", err)
        return 1
    return 0


def _require_model(
    parser: argparse.ArgumentParser, cards: dict[str, Any], flag: str, name: str | None
) -> str:
    """``name`` if the zoo has it, else exit with the names there are (a name is looked up,
    never used as a path)."""
    if name is None or name not in cards:
        from kwta.zoo.hub import pretrained_dir

        parser.error(
            f"{flag}: no pretrained model {name!r} in {pretrained_dir()}; "
            f"available: {', '.join(sorted(cards)) or 'none'}"
        )
    return name


def _cmd_lesson(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    from tqdm import tqdm

    from kwta.data import cifar10_sample
    from kwta.explorer.lesson import compute_lesson, write_lesson
    from kwta.zoo.hub import WeightsError, list_pretrained, load_pretrained, pretrained_dir
    from kwta.zoo.summary import default_pair

    cards = list_pretrained()
    relu, kwta = default_pair(cards)
    relu, kwta = args.relu or relu, args.kwta or kwta
    relu = _require_model(parser, cards, "--relu", relu)
    kwta = _require_model(parser, cards, "--kwta", kwta)
    try:
        models = {
            "relu": load_pretrained(relu, device="cpu"),
            "kwta": load_pretrained(kwta, device="cpu"),
        }
    except WeightsError as err:
        log.error("%s", err)
        return 1
    bar = tqdm(total=7, desc="lesson", disable=not _progress(args.quiet), dynamic_ncols=True)

    def step(done: int, total: int) -> None:
        bar.update(done - bar.n)

    results = compute_lesson(
        {"relu": cards[relu], "kwta": cards[kwta]}, models, cifar10_sample("test"), callback=step
    )
    bar.close()
    path = write_lesson(results, pretrained_dir())
    sys.stdout.write(
        f"wrote {path.name} in {pretrained_dir().name}/ ({path.stat().st_size // 1024} KiB, "
        f"{results['seconds']:.0f} s): {relu} vs {kwta}, test image #{results['image']['index']}\n"
    )
    return 0


def _cmd_transfer(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    from tqdm import tqdm

    from kwta.data import DataSourceError, cifar10, cifar10_sample
    from kwta.evaluation.transfer import TRANSFER_IMAGES, compute_transfer, write_transfer
    from kwta.utils import default_device
    from kwta.zoo.hub import WeightsError, list_pretrained, load_pretrained, pretrained_dir
    from kwta.zoo.summary import table3_models

    cards = list_pretrained()
    roles = {r: n for r, n in table3_models(cards).items() if n is not None}
    if len(roles) < 2:
        parser.error(
            "need at least two of the zoo's relu-nat, kwta0.1-nat, relu-at, kwta0.1-at kinds; "
            f"found {', '.join(sorted(cards)) or 'none'} in {pretrained_dir().name}/"
        )
    device = default_device(args.device)
    try:
        data = cifar10("test", args.data) if args.data else cifar10_sample("test")
        models = {r: load_pretrained(n, device=device) for r, n in roles.items()}
    except (DataSourceError, WeightsError) as err:
        log.error("%s", err)
        return 1
    bar = tqdm(total=len(roles), desc="sources", disable=not _progress(args.quiet))
    results = compute_transfer(
        {r: cards[n] for r, n in roles.items()},
        models,
        data,
        n=args.n or TRANSFER_IMAGES,
        callback=lambda done, total: bar.update(done - bar.n),
    )
    bar.close()
    path = write_transfer(results, pretrained_dir())
    labels = results["labels"]
    rows = [
        "| target \\ source | " + " | ".join(labels[r] for r in results["roles"]) + " |",
        "|---|" + "---:|" * len(results["roles"]),
    ]
    for t in results["roles"]:
        cells = [f"{results['matrix'][t][s]:.1%}" for s in results["roles"]]
        rows.append(f"| {labels[t]} ({roles[t]}) | " + " | ".join(cells) + " |")
    sys.stdout.write("\n".join(rows) + "\n")
    sys.stdout.write(
        f"wrote {path.name} in {pretrained_dir().name}/: {results['n']} images, "
        f"{results['seconds']:.0f} s; diagonal = white-box\n"
    )
    return 0


def _cmd_sweep(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    from kwta.data import DataSourceError, cifar10
    from kwta.training.sweep import publish_sweep, ratio_sweep, sweep_ratios
    from kwta.zoo.hub import WeightsError, list_pretrained, pretrained_dir

    cards = list_pretrained()
    card = cards[_require_model(parser, cards, "--model", args.model)]
    gamma0 = (card["arch_kwargs"].get("act_kwargs") or {}).get("ratio")
    if card["arch_kwargs"].get("act") != "kwta" or gamma0 is None:
        parser.error(f"--model: {args.model} has no k-WTA layers to lower γ in")
    try:
        ratios = sweep_ratios(float(gamma0), args.to, args.delta)
    except ValueError as err:
        parser.error(str(err))
    try:
        result = ratio_sweep(
            pretrained_dir() / card["card_file"],
            ratios,
            train_data=cifar10("train", args.data),
            test_data=cifar10("test", args.data),
            work=args.work,
            passes=args.passes,
            lr=args.lr,
            eval_n=args.eval_n,
            robust_n=args.robust_n,
            subset=args.subset,
            device=args.device,
        )
    except (DataSourceError, WeightsError) as err:
        log.error("%s", err)
        return 1
    rows = ["| γ | clean | PGD-20 |", "|---:|---:|---:|"]
    rows += [
        f"| {p['ratio']:g} | {p['clean_accuracy']:.2%} | {p['robust_accuracy']:.2%} |"
        for p in result["points"]
    ]
    sys.stdout.write("\n".join(rows) + "\n")
    try:  # the results stay in --work whatever happens here
        path = publish_sweep(result, card, pretrained_dir())
    except (OSError, ValueError) as err:
        log.error("could not publish the sweep beside the models: %s", err)
        return 1
    where = f"{path.name} in {pretrained_dir().name}/"
    sys.stdout.write(f"wrote {where} (the Model zoo page's Fig. 4)\n")
    return 0


def _cmd_reproduce(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    from kwta.explorer.provenance import ProvenanceError, read_document
    from kwta.explorer.reproduce import NotReproduced, reproduce

    try:
        doc = read_document(args.result)
        rep = reproduce(doc, device=args.device, data=args.data)
    except ProvenanceError as err:
        sys.stderr.write(f"kwta reproduce: refused: {err}\n")
        return 2
    except NotReproduced as err:
        sys.stderr.write(f"kwta reproduce: NOT reproduced: {err}\n")
        return 1
    text = rep.report()
    sys.stdout.write((text.splitlines()[-1] if args.quiet else text) + "\n")
    if args.json:
        Path(args.json).write_text(json.dumps(rep.to_dict(), indent=2) + "\n")
    return 0 if rep.passed else 1


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``kwta`` / ``python -m kwta``.

    Returns:
        0 on success, 1 when the data or weights are unusable (``reproduce``: also when
        the numbers differ). Bad arguments exit through argparse with code 2
        (:class:`SystemExit`); ``reproduce`` returns 2 for a file that is not a result.
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
        if args.command == "lesson":
            return _cmd_lesson(args, sub)
        if args.command == "sweep":
            return _cmd_sweep(args, sub)
        if args.command == "transfer":
            return _cmd_transfer(args, sub)
        if args.command == "reproduce":
            return _cmd_reproduce(args, sub)
        if args.command == "import":
            return _cmd_import(args, sub)
        if args.command == "doctor":
            from kwta.doctor import format_report, run_checks

            checks = run_checks()
            sys.stdout.write(format_report(checks) + "\n")
            return 1 if any(c.status == "fail" for c in checks) else 0
        return _cmd_evaluate(args, sub, args_list)


def _cmd_import(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    from kwta.zoo.imported import ImportRefused, import_model

    kwargs = dict(args.arch_kwargs)
    for key in ("mean", "std"):
        if getattr(args, key) is not None:
            kwargs[key] = getattr(args, key)
    try:
        card = import_model(
            args.weights,
            arch=args.arch,
            name=args.name,
            out_dir=args.out,
            arch_kwargs=kwargs,
            dtype=args.dtype,
            n=args.n,
        )
    except ImportRefused as err:
        log.error("kwta import: refused: %s", err)
        return 1
    m = card["metrics"]
    clean, pgd = m["clean_accuracy"], m["robust_accuracy"]["pgd"]
    sys.stdout.write(
        f"{card['name']}: clean {clean:.1%}, PGD-20 {pgd:.1%} "
        f"on the bundled {m['clean_n']} test images; imported in "
        f"{card['training']['imported_in_s']:.1f} s\n"
        f"wrote {args.out}/{card['weights']} and {card['name']}.json; "
        f"KWTA_PRETRAINED={args.out} shows it on every page\n"
    )
    return 0
