"""Overhead of the Python package: `Model.run_with_cache` of 10,000 paper1 questions from
Python against the same work done by the Rust library alone (parsing, tokens, the batched
cached forward pass), in one process, best of several repeats.

    python python/benchmarks/run_with_cache.py [--model RUN_OR_FILE] [--questions 10000]

Without --model it trains a paper1-sized model for one step (speed does not depend on the
weights). Done when Python takes at most 1.2x the Rust time.
"""

import argparse
import tempfile
import time

import arithlens
from arithlens import _native

HOOKS = {
    "attention": lambda n: n.endswith(("hook_pattern", "hook_z")),
    "residual": lambda n: "hook_resid" in n,
    "logits only": lambda n: False,
}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", help="a paper1 run folder or model file (default: a one-step paper1 model)")
    ap.add_argument("--questions", type=int, default=10_000)
    ap.add_argument("--repeats", type=int, default=2)
    a = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        model = arithlens.load(a.model) if a.model else arithlens.train("paper1", out=f"{tmp}/p1", steps=1, progress=False).model
        qs = model.random_questions(a.questions, seed=1)
        print(f"{model!r}, {len(qs)} questions", flush=True)
        worst = 0.0
        for label, keep in HOOKS.items():
            names = [n for n in model.hook_names if keep(n)]
            py, rust = [], []
            for _ in range(a.repeats):
                t0 = time.perf_counter()
                logits, cache = model.run_with_cache(qs, names_filter=names)
                py.append(time.perf_counter() - t0)
                del logits, cache
                rust.append(_native.bench_cache(model._m, qs, names))
            ratio = min(py) / min(rust)
            worst = max(worst, ratio)
            print(f"{label:>24} ({len(names)} hooks): Python {min(py):.3f} s, Rust {min(rust):.3f} s, ratio {ratio:.3f}", flush=True)
        print(f"worst ratio {worst:.3f} ({'within' if worst <= 1.2 else 'OVER'} 1.2x)")


if __name__ == "__main__":
    main()
