"""The main picture of "Understanding Addition in Transformers", from Python: the attention
staircase (each head's mean attention from the answer-predicting positions to the operand
digits) and the per-digit ablation (each answer digit's accuracy with each head mean-ablated).

    python python/examples/paper_picture.py --run runs/paper1 --out paper_picture.png
    python python/examples/paper_picture.py --train tiny --steps 2000 --out tiny_picture.png

With --train it trains that preset first, into --run if given (unless that already holds a
model) or a temporary folder.
"""

import argparse
import tempfile
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

import arithlens  # noqa: E402


def staircase(model, questions):
    """Per head (layer, head): mean attention [answer position, key position]."""
    names = [f"blocks.{l}.attn.hook_pattern" for l in range(model.config["n_layers"])]
    _, cache = model.run_with_cache(questions, names_filter=names)
    rows = slice(model.answer_start - 1, model.n_ctx - 1)  # the positions that predict answer digits
    return {(l, h): cache[n][:, h, rows, :].mean(0) for l, n in enumerate(names) for h in range(model.config["n_heads"])}


def ablation(model, questions):
    """Per head (layer, head): each answer digit's accuracy with the head mean-ablated."""
    out = {}
    for l in range(model.config["n_layers"]):
        for h in range(model.config["n_heads"]):
            p = model.run_with_hooks(questions, arithlens.mean(f"blocks.{l}.attn.hook_z", heads=[h]), reference=1000)
            out[(l, h)] = (p.tokens == p.true_tokens).mean(0)
    clean = model.run_with_hooks(questions, [])
    return out, (clean.tokens == clean.true_tokens).mean(0)


def draw(model, stairs, ablated, clean, out):
    heads = list(stairs)
    fig, axes = plt.subplots(1, len(heads) + 1, figsize=(3.2 * (len(heads) + 1), 3.4), constrained_layout=True)
    names = model.token_names
    keys = [f"{i}" for i in range(model.n_ctx)]
    for ax, (l, h) in zip(axes, heads):
        ax.imshow(stairs[(l, h)], cmap="Blues", vmin=0, vmax=1, aspect="auto")
        ax.set_title(f"L{l}H{h} attention")
        ax.set_xticks(range(model.n_ctx), keys, fontsize=6)
        ax.set_yticks(range(model.n_answer), [f"→{a}" for a in model.answer_names], fontsize=7)
        ax.set_xlabel("key position")
    grid = np.array([ablated[k] for k in heads])
    ax = axes[-1]
    ax.imshow(grid, cmap="RdYlGn", vmin=0, vmax=1, aspect="auto")
    ax.set_title("digit accuracy, head ablated")
    ax.set_xticks(range(model.n_answer), model.answer_names, fontsize=7)
    ax.set_yticks(range(len(heads)), [f"L{l}H{h}" for l, h in heads], fontsize=7)
    for (i, j), v in np.ndenumerate(grid):
        ax.text(j, i, f"{v:.2f}", ha="center", va="center", fontsize=6)
    fig.suptitle(f"{model.name}: {model.n_digits}-digit {model.format}; clean digit accuracy "
                 + " ".join(f"{a}={c:.2f}" for a, c in zip(model.answer_names, clean)) + f"  (tokens: {' '.join(names)})",
                 fontsize=8)
    fig.savefig(out, dpi=130)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--run", help="a run folder (or model file) to load; with --train, where to train")
    ap.add_argument("--train", metavar="PRESET", help="train this preset first (e.g. tiny)")
    ap.add_argument("--steps", type=int, help="training steps (with --train)")
    ap.add_argument("--questions", type=int, default=500, help="questions per measurement")
    ap.add_argument("--out", default="paper_picture.png")
    a = ap.parse_args()
    if not a.run and not a.train:
        ap.error("give --run RUN_DIR, --train PRESET, or both")
    with tempfile.TemporaryDirectory() as tmp:
        if a.train and not (a.run and Path(a.run, "model.safetensors").exists()):
            model = arithlens.train(a.train, out=a.run or f"{tmp}/run", steps=a.steps).model
        else:
            model = arithlens.load(a.run)
        questions = [q for q in model.random_questions(a.questions, seed=7) if "+" in q]
        stairs = staircase(model, questions)
        ablated, clean = ablation(model, questions)
        draw(model, stairs, ablated, clean, a.out)
    print(f"wrote {a.out}")


if __name__ == "__main__":
    main()
