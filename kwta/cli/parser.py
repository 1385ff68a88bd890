"""The ``kwta`` argument parser: sub-commands train, evaluate, zoo build, reproduce, import,
lesson, transfer, sweep, doctor."""

from __future__ import annotations

import argparse

from kwta.cli.options import (
    adaptive_list,
    attack_list,
    device_arg,
    existing_path,
    float_triple,
    int_or_all,
    json_object,
    names_arg,
    nonneg_float,
    nonneg_int,
    positive_float,
    positive_int,
    ratio,
)


def build_parser() -> argparse.ArgumentParser:
    """The ``kwta`` argument parser (sub-commands ``train`` and ``evaluate``)."""
    from kwta import paper
    from kwta.training.config import METHODS

    parser = argparse.ArgumentParser(
        prog="kwta",
        description=(
            "k-WTA Explorer: train and evaluate the networks of Xiao, Zhong, Zheng (ICLR 2020)."
        ),
    )
    sub = parser.add_subparsers(
        dest="command", metavar="{train,evaluate,zoo,reproduce,import,lesson,transfer,sweep,doctor}"
    )
    sub.required = True

    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--data",
        type=existing_path,
        metavar="PATH",
        help="CIFAR-10: cifar-10-batches-py folder, image folder or tarball "
        "(default: $KWTA_DATA, else the bundled sample)",
    )
    common.add_argument(
        "--device",
        type=device_arg,
        default=None,
        help="torch device (default: CUDA when present, else CPU)",
    )
    common.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    common.add_argument(
        "--batch-size", type=positive_int, default=256, help="batch size (default 256)"
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
    t.add_argument("--width", type=positive_int, default=64, help="first-stage channels (64)")
    t.add_argument("--act", default="relu", choices=["relu", "kwta", "lwta"], help="activation")
    t.add_argument(
        "--ratio",
        type=ratio,
        default=0.1,
        help="k-WTA sparsity ratio γ in (0, 1]; the final γ1 with --incremental-from (0.1)",
    )
    t.add_argument("--group-size", type=positive_int, default=10, help="LWTA group size (10)")
    t.add_argument(
        "--method",
        default="natural",
        choices=list(METHODS),
        help="natural | pgd (Madry AT) | trades | free (free AT) | fgsm (fast AT, Wong et al.)",
    )
    t.add_argument(
        "--epochs",
        type=positive_int,
        default=80,
        help="main-phase epochs (80); free AT makes ceil(epochs/m) passes",
    )
    t.add_argument("--lr", type=positive_float, default=0.1, help="initial learning rate (0.1)")
    t.add_argument(
        "--lr-drop-epoch",
        type=nonneg_int,
        default=None,
        help="drop the LR x0.1 after this epoch (default round(epochs*50/80))",
    )
    t.add_argument("--momentum", type=nonneg_float, default=0.9, help="SGD momentum (0.9)")
    t.add_argument("--weight-decay", type=nonneg_float, default=5e-4, help="weight decay (5e-4)")
    t.add_argument(
        "--eps", type=positive_float, default=paper.EPS, help=f"training attack ε ({paper.EPS})"
    )
    t.add_argument(
        "--pgd-steps",
        type=positive_int,
        default=None,
        help="PGD iterations (8 for pgd, 10 for trades)",
    )
    t.add_argument(
        "--pgd-alpha",
        type=positive_float,
        default=paper.TRAIN_STEP_SIZE,
        help=f"PGD step size ({paper.TRAIN_STEP_SIZE})",
    )
    t.add_argument("--trades-beta", type=nonneg_float, default=6.0, help="TRADES β = 1/λ (6)")
    t.add_argument("--free-replays", type=positive_int, default=8, help="free AT replays m (8)")
    t.add_argument(
        "--incremental-from",
        type=ratio,
        default=None,
        metavar="GAMMA0",
        help="incremental fine-tuning (Sec. 2.2): train at γ0 first, then lower γ to --ratio",
    )
    t.add_argument(
        "--incremental-delta",
        type=positive_float,
        default=0.005,
        help="decrement δ of γ per fine-tuning step (0.005)",
    )
    t.add_argument(
        "--incremental-epochs",
        type=positive_int,
        default=2,
        help="epochs per fine-tuning step (2)",
    )
    t.add_argument("--no-augment", action="store_true", help="no random crop / flip")
    t.add_argument(
        "--subset",
        type=positive_int,
        default=None,
        metavar="N",
        help="train on a class-balanced subset of N images",
    )
    t.add_argument(
        "--eval-n",
        type=int_or_all,
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
        "--warmup", type=positive_float, default=0.25, help="one-cycle warm-up fraction (0.25)"
    )
    t.add_argument("--nesterov", action="store_true", help="Nesterov momentum")
    t.add_argument("--label-smoothing", type=nonneg_float, default=0.0, help="label smoothing (0)")
    t.add_argument(
        "--init-from",
        type=existing_path,
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

    sw = sub.add_parser(
        "sweep",
        help="Fig. 4: lower γ step by step from a k-WTA model, fine-tuning and evaluating each",
        description=(
            "The paper's Fig. 4 (Sec. 4.2): starting from a trained k-WTA model, lower γ by "
            "--delta down to --to, fine-tuning --passes passes per step (incremental "
            "fine-tuning, Sec. 2.2), and measure clean accuracy and PGD-20 robust accuracy "
            "at every γ. Resumable: each step's weights and the results (sweep.json) stay in "
            "--work."
        ),
    )
    sw.add_argument("--model", required=True, help="k-WTA model to start from (in pretrained/)")
    sw.add_argument("--to", type=ratio, default=0.02, help="last γ (0.02)")
    sw.add_argument("--delta", type=ratio, default=0.025, help="γ step (0.025)")
    sw.add_argument("--passes", type=positive_int, default=2, help="passes per step (2)")
    sw.add_argument("--lr", type=positive_float, default=0.01, help="peak LR per step (0.01)")
    sw.add_argument("--eval-n", type=positive_int, default=1000, help="clean-accuracy images")
    sw.add_argument("--robust-n", type=positive_int, default=500, help="PGD-20 images (500)")
    sw.add_argument("--subset", type=positive_int, default=None, help="fine-tune on N images")
    sw.add_argument("--data", type=existing_path, default=None, help="CIFAR-10 location")
    sw.add_argument("--work", default="runs/sweep", help="weights and sweep.json (runs/sweep)")
    sw.add_argument("--device", type=device_arg, default=None, help="cpu or cuda")
    sw.add_argument("-q", "--quiet", action="store_true", help="no progress bars")
    sw.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sw.set_defaults(sub_parser=sw)

    rp = sub.add_parser(
        "reproduce",
        help="rerun a result downloaded from the explorer and compare its numbers",
        description=(
            "Rerun the computation of a result JSON downloaded from the explorer (its "
            "provenance: page action, settings, model by name and sha256, image) and compare "
            "with the recorded numbers: exactly on the device, library and torch version that "
            "made it, within the documented tolerances elsewhere. Exit 0: reproduced; 1: the "
            "numbers, the weights or the image differ; 2: not a valid result file."
        ),
    )
    rp.add_argument("result", metavar="RESULT.json", help="a result downloaded from the explorer")
    rp.add_argument(
        "--device", type=device_arg, default=None, help="cpu or cuda (default: as recorded)"
    )
    rp.add_argument(
        "--data",
        type=existing_path,
        default=None,
        help="CIFAR-10 copy the image came from, if not the bundled sample (default $KWTA_DATA)",
    )
    rp.add_argument("--json", metavar="OUT.json", default=None, help="write the comparison")
    rp.add_argument("-q", "--quiet", action="store_true", help="print the verdict line only")
    rp.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    rp.set_defaults(sub_parser=rp)

    im = sub.add_parser(
        "import",
        help="make a CIFAR-10 checkpoint of your own a model of the explorer",
        description=(
            "Import a CIFAR-10 classifier's checkpoint (safetensors, or a PyTorch state dict "
            "read with torch.load(weights_only=True) only: bare, under state_dict or "
            "model_state_dict, module./model. prefixes stripped; the format is decided by the "
            "file's bytes) into an architecture of the registry, checked key by key and shape "
            "by shape, and write NAME.safetensors + NAME.json (clean accuracy and PGD-20 "
            "measured on the bundled 1 000-image sample) into --out. Point KWTA_PRETRAINED "
            "at that folder and the model is on every page. Exit 1: refused, with the reason."
        ),
    )
    im.add_argument("weights", type=existing_path, metavar="WEIGHTS", help="the checkpoint file")
    im.add_argument("--arch", required=True, help="architecture (kwta.models.ARCHITECTURES)")
    im.add_argument(
        "--arch-kwargs",
        type=json_object,
        default={},
        metavar="JSON",
        help='its keywords, e.g. \'{"width": 64, "act": "relu"}\'',
    )
    im.add_argument(
        "--mean", type=float_triple, default=None, metavar="R,G,B", help="input normalisation mean"
    )
    im.add_argument(
        "--std", type=float_triple, default=None, metavar="R,G,B", help="input normalisation std"
    )
    im.add_argument("--name", required=True, help="the model's name (a file stem)")
    im.add_argument("--out", default="imported", metavar="DIR", help="where to write (imported)")
    im.add_argument(
        "--dtype",
        choices=["float16", "bfloat16", "float32"],
        default="float16",
        help="storage dtype (float16)",
    )
    im.add_argument(
        "--n", type=positive_int, default=1000, help="bundled test images measured (1000)"
    )
    im.add_argument("-q", "--quiet", action="store_true", help="warnings only")
    im.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    im.set_defaults(sub_parser=im)

    les = sub.add_parser(
        "lesson",
        help="precompute the Lesson page's results (pretrained/lesson.json)",
        description=(
            "Compute the Lesson page's toy fit, PGD traces, loss landscapes and weight-space "
            "lines on the zoo's default ReLU and k-WTA models and the bundled test images, and "
            "write them beside the models (lesson.json), so every step appears at once."
        ),
    )
    les.add_argument("--relu", default=None, help="ReLU model name (default: the zoo's relu-nat)")
    les.add_argument("--kwta", default=None, help="k-WTA model name (default: kwta0.1-nat)")
    les.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    les.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    les.set_defaults(sub_parser=les)

    tr = sub.add_parser(
        "transfer",
        help="the paper's Table 3 on the zoo (pretrained/transfer.json)",
        description=(
            "PGD examples crafted on each of the zoo's ReLU, k-WTA-0.1, ReLU (AT) and "
            "k-WTA-0.1 (AT) models, classified by every other one (App. D.3, Table 3), on "
            "class-balanced test images; written beside the models (transfer.json) for the "
            "Model zoo page. The diagonal is white-box (one copy of each model)."
        ),
    )
    tr.add_argument("--n", type=positive_int, default=None, help="test images (default 500)")
    tr.add_argument(
        "--data", type=existing_path, default=None, help="CIFAR-10 (default: the bundled sample)"
    )
    tr.add_argument("--device", type=device_arg, default=None, help="cpu or cuda (default: auto)")
    tr.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    tr.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    tr.set_defaults(sub_parser=tr)

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
            "Train each zoo model with its recipe (kwta.training.zoo.ZOO), evaluate it with "
            "the paper's attacks and write weights + card. Resumable: a checkpoint per pass "
            "in --work; re-running continues where it stopped and skips finished models."
        ),
    )
    from kwta.training.zoo import TIERS, ZOO

    zb.add_argument(
        "--tier",
        choices=list(TIERS),
        default="cpu",
        help=", ".join(f"{t}: width {w}" for t, w in TIERS.items())
        + " (cpu); the models built when --only is not given",
    )
    zb.add_argument(
        "--only",
        type=lambda text: names_arg(text, list(ZOO), "zoo model"),
        default=None,
        metavar="NAME[,NAME]",
        help=f"build only these ({', '.join(ZOO)})",
    )
    zb.add_argument(
        "--width",
        type=positive_int,
        default=None,
        help="ResNet-18 width for every model (smoke runs; default: each model's tier)",
    )
    zb.add_argument(
        "--minutes",
        type=positive_float,
        default=None,
        help="training time budget for all listed models; epochs sized from timed first steps",
    )
    zb.add_argument(
        "--epochs", type=positive_int, default=None, help="main-phase passes (default: recipes)"
    )
    zb.add_argument("--subset", type=positive_int, default=None, help="train on N images (smoke)")
    zb.add_argument(
        "--eval-n", type=nonneg_int, default=1000, help="attack images (1000; 0: no evaluation)"
    )
    zb.add_argument(
        "--clean-n", type=int_or_all, default=None, metavar="N|all", help="clean images (all)"
    )
    zb.add_argument("--restarts", type=nonneg_int, default=5, help="extra PGD-40 random starts (5)")
    zb.add_argument(
        "--adaptive-n",
        type=nonneg_int,
        default=0,
        help="images for the adaptive attacks (0: skip; ~1 h per 500 images on 2 CPU cores)",
    )
    zb.add_argument(
        "--attacks",
        type=attack_list,
        default=None,
        metavar="NAME[,NAME]",
        help="standard attacks of the evaluation (default: pgd,mim,cw,deepfool)",
    )
    zb.add_argument(
        "--out", default="pretrained", metavar="DIR", help="weights + cards (pretrained)"
    )
    zb.add_argument(
        "--work",
        default=None,
        metavar="DIR",
        help="checkpoints (default: ~/.cache/kwta/zoo, outside the repository)",
    )
    zb.add_argument(
        "--threads-file",
        default=None,
        metavar="FILE",
        help="a file holding torch's CPU thread count, re-read every 20 training steps",
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
    which.add_argument("--card", type=existing_path, metavar="PATH.json", help="a model card")
    e.add_argument(
        "--attacks",
        type=attack_list,
        default=["pgd", "mim", "cw", "deepfool"],
        help="comma-separated attacks, or 'none' (default pgd,mim,cw,deepfool)",
    )
    e.add_argument(
        "--n", type=positive_int, default=1000, help="robust-evaluation subset size (1000)"
    )
    e.add_argument(
        "--clean-n",
        type=int_or_all,
        default=None,
        metavar="N|all",
        help="images for the clean accuracy (default all)",
    )
    e.add_argument("--eps", type=nonneg_float, default=paper.EPS, help=f"ℓ∞ radius ({paper.EPS})")
    e.add_argument(
        "--restarts",
        type=nonneg_int,
        default=0,
        help="extra PGD-40 random starts; an image counts only if it survives all (0; zoo: 5)",
    )
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
        type=positive_int,
        default=100,
        help="adaptive-evaluation subset size (100)",
    )
    e.add_argument(
        "--adaptive-attacks",
        type=adaptive_list,
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
