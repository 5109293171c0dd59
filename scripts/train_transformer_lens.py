#!/usr/bin/env python3
"""Trains a small TransformerLens HookedTransformer on n-digit addition in arithlens's Paper 1
token format and saves its state dict with safetensors, for `arithlens eval` / `analyze` to read
as a model trained elsewhere (docs/results.md, "Failure families").

Token format (src/task/format.rs, Paper 1; vocabulary 12): the first operand's digits, most
significant first, token 10 ('+'), the second operand's digits, token 11 ('='), then the n + 1
answer digits A_n..A_0. n_ctx = 3n + 3. The loss is the mean cross-entropy of the answer tokens,
each predicted one position before it is emitted (positions 2n+1 .. 3n+1).

The file holds the plain state dict (TransformerLens names and shapes; the attn.mask and
attn.IGNORE buffers left out, as they are not weights) and only two metadata entries, n_digits
and format; there is no config metadata, so arithlens reads the config off the shapes (which
assumes act_fn relu and LayerNorm, both set here).

Reproducible: every random number comes from --seed (torch.manual_seed for the weights, a torch
Generator for the batches), one CPU thread. The config and the training settings are printed
first. Not run by CI or the tests (it needs torch); e.g.

    python3 -m venv /tmp/tlvenv && /tmp/tlvenv/bin/pip install transformer_lens==2.18.0 'pyarrow<21'
    nice /tmp/tlvenv/bin/python scripts/train_transformer_lens.py --out runs/tl_add5/model.safetensors
    arithlens eval runs/tl_add5
"""
import argparse, json, math, os, sys, time

import torch
from safetensors.torch import save_file
from transformer_lens import HookedTransformer, HookedTransformerConfig

# batch(n, size, gen, enrich): `size` questions as tokens [size, 3n+3]; with `enrich`, each digit
# pair of the second operand made to sum to 9 with probability 0.4 (the paper's enrichment,
# as cascades are rare). The fixtures' trajectory script defines it once for both.
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "fixtures", "transformer_lens"))
from make_trajectory import batch  # noqa: E402


def answer_loss(model, tokens, n):
    logits = model(tokens)[:, 2 * n + 1 : 3 * n + 2]
    return torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), tokens[:, 2 * n + 2 :].reshape(-1))


@torch.no_grad()
def accuracy(model, n, questions, gen):
    """Share of `questions` random (not enriched) questions whose every answer digit is right
    (teacher-forced argmax, which equals greedy decoding on a right answer)."""
    right = 0
    for _ in range(0, questions, 1000):
        t = batch(n, 1000, gen, enrich=False)
        pred = model(t)[:, 2 * n + 1 : 3 * n + 2].argmax(-1)
        right += (pred == t[:, 2 * n + 2 :]).all(1).sum().item()
    return right / questions


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", required=True, help="the safetensors file to write (refused if it exists, unless --force)")
    p.add_argument("--force", action="store_true")
    p.add_argument("--n-digits", type=int, default=5)
    p.add_argument("--layers", type=int, default=1)
    p.add_argument("--heads", type=int, default=3)
    p.add_argument("--d-model", type=int, default=192)
    p.add_argument("--d-head", type=int, default=64)
    p.add_argument("--d-mlp", type=int, default=768)
    p.add_argument("--steps", type=int, default=4000)
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--weight-decay", type=float, default=0.1)
    p.add_argument("--warmup", type=int, default=100)
    p.add_argument("--seed", type=int, default=372001)
    a = p.parse_args()
    if os.path.exists(a.out) and not a.force:
        raise SystemExit(f"{a.out} exists: pass --force to overwrite it, or choose another --out")
    torch.set_num_threads(1)
    torch.manual_seed(a.seed)
    n = a.n_digits
    cfg = HookedTransformerConfig(
        n_layers=a.layers, n_heads=a.heads, d_model=a.d_model, d_head=a.d_head, d_mlp=a.d_mlp,
        d_vocab=12, d_vocab_out=12, n_ctx=3 * n + 3, act_fn="relu", normalization_type="LN", seed=a.seed,
    )
    model = HookedTransformer(cfg)
    settings = {k: v for k, v in vars(a).items() if k not in ("out", "force")}
    print("config:", json.dumps({k: getattr(cfg, k) for k in
          ["n_layers", "n_heads", "d_model", "d_head", "d_mlp", "d_vocab", "d_vocab_out", "n_ctx", "act_fn", "normalization_type", "eps"]}))
    print("training:", json.dumps(settings), f"torch {torch.__version__}")
    opt = torch.optim.AdamW(model.parameters(), lr=a.lr, betas=(0.9, 0.98), weight_decay=a.weight_decay)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: min((s + 1) / a.warmup, 0.5 * (1 + math.cos(math.pi * min(s / a.steps, 1.0)))))
    gen = torch.Generator().manual_seed(a.seed + 1)
    start = time.time()
    for step in range(1, a.steps + 1):
        loss = answer_loss(model, batch(n, a.batch, gen, enrich=step % 2 == 0), n)
        loss.backward()
        opt.step()
        sched.step()
        opt.zero_grad()
        if step % 500 == 0 or step == a.steps:
            print(f"step {step}: loss {loss.item():.3e} ({time.time() - start:.0f} s)", flush=True)
    model.eval()
    acc = accuracy(model, n, 20_000, torch.Generator().manual_seed(a.seed + 2))
    print(f"accuracy on 20,000 random questions: {100 * acc:.3f}%")
    sd = {k: v.detach().contiguous() for k, v in model.state_dict().items()
          if not (k.endswith("attn.mask") or k.endswith("attn.IGNORE"))}
    os.makedirs(os.path.dirname(os.path.abspath(a.out)), exist_ok=True)
    tmp = a.out + ".tmp"
    save_file(sd, tmp, metadata={"n_digits": str(n), "format": "paper1"})
    os.replace(tmp, a.out)
    print(f"wrote {a.out}")


if __name__ == "__main__":
    main()
