"""Shared fixtures: tiny models trained in seconds (one per layer count and token format), the
arithlens command-line binary for comparisons, and a numpy reference forward pass."""

import os
import shutil
from pathlib import Path
from typing import Callable, Dict, Optional, Tuple

import numpy as np
import pytest

import arithlens

REPO = Path(__file__).resolve().parents[2]

# name -> (preset, overrides): 1 and 2 layers, in both token formats.
MODELS = {
    "paper1_l1": ("tiny", {"steps": 300}),
    "paper1_l2": ("tiny_l2", {"steps": 200}),
    "sign_l1": ("tiny_mix", {"steps": 200, "n_layers": 1}),
    "sign_l2": ("tiny_mix", {"steps": 200}),
}


@pytest.fixture(scope="session")
def runs(tmp_path_factory) -> Dict[str, Path]:
    """The run folders of MODELS, trained once per session."""
    root = tmp_path_factory.mktemp("runs")
    out = {}
    for name, (preset, o) in MODELS.items():
        o = dict(o)
        steps = o.pop("steps")
        out[name] = arithlens.train(preset, out=root / name, steps=steps, progress=False, **o).dir
    return out


@pytest.fixture(scope="session")
def models(runs) -> Dict[str, arithlens.Model]:
    return {name: arithlens.load(d) for name, d in runs.items()}


@pytest.fixture(scope="session")
def cli() -> str:
    """The arithlens binary (ARITHLENS_BIN, else target/release/arithlens of this repository)."""
    path = os.environ.get("ARITHLENS_BIN") or str(REPO / "target" / "release" / "arithlens")
    if not (os.path.isfile(path) and os.access(path, os.X_OK)):
        if os.environ.get("ARITHLENS_BIN"):
            pytest.fail(f"ARITHLENS_BIN={path} is not an executable")
        pytest.skip(f"no arithlens binary at {path}: build it with `cargo build --release` or set ARITHLENS_BIN")
    return path


def _ln(x: np.ndarray, w: np.ndarray, b: np.ndarray, eps: float, name: str, hook) -> np.ndarray:
    x = x - x.mean(-1, keepdims=True)
    scale = hook(f"{name}.hook_scale", np.sqrt((x * x).mean(-1, keepdims=True) + eps))
    return hook(f"{name}.hook_normalized", x / scale) * w + b


def reference_forward(sd: Dict[str, np.ndarray], cfg: dict, tokens: np.ndarray,
                      hooks: Optional[Dict[str, Callable[[np.ndarray], np.ndarray]]] = None) -> Tuple[np.ndarray, Dict[str, np.ndarray]]:
    """TransformerLens's forward pass written plainly in float64 numpy: logits and every hook
    activation; `hooks` may replace an activation (name -> function of it)."""
    sd = {k: v.astype(np.float64) for k, v in sd.items()}
    cache: Dict[str, np.ndarray] = {}
    hooks = hooks or {}

    def hook(name: str, x: np.ndarray) -> np.ndarray:
        if name in hooks:
            x = hooks[name](x.copy())
        cache[name] = x
        return x

    t = tokens.shape[1]
    resid = hook("hook_embed", sd["embed.W_E"][tokens]) + hook("hook_pos_embed", np.broadcast_to(sd["pos_embed.W_pos"][:t], (len(tokens), t, cfg["d_model"])))
    mask = np.triu(np.ones((t, t), dtype=bool), 1)
    for l in range(cfg["n_layers"]):
        p = f"blocks.{l}"
        resid = hook(f"{p}.hook_resid_pre", resid)
        x = _ln(resid, sd[f"{p}.ln1.w"], sd[f"{p}.ln1.b"], cfg["eps"], f"{p}.ln1", hook)
        q = hook(f"{p}.attn.hook_q", np.einsum("bpd,hdk->bphk", x, sd[f"{p}.attn.W_Q"]) + sd[f"{p}.attn.b_Q"])
        k = hook(f"{p}.attn.hook_k", np.einsum("bpd,hdk->bphk", x, sd[f"{p}.attn.W_K"]) + sd[f"{p}.attn.b_K"])
        v = hook(f"{p}.attn.hook_v", np.einsum("bpd,hdk->bphk", x, sd[f"{p}.attn.W_V"]) + sd[f"{p}.attn.b_V"])
        scores = np.einsum("bqhk,bphk->bhqp", q, k) / np.sqrt(cfg["d_head"])
        scores = hook(f"{p}.attn.hook_attn_scores", np.where(mask, -np.inf, scores))
        e = np.exp(scores - scores.max(-1, keepdims=True))
        pattern = hook(f"{p}.attn.hook_pattern", e / e.sum(-1, keepdims=True))
        z = hook(f"{p}.attn.hook_z", np.einsum("bhqp,bphd->bqhd", pattern, v))
        attn_out = hook(f"{p}.hook_attn_out", np.einsum("bqhd,hdm->bqm", z, sd[f"{p}.attn.W_O"]) + sd[f"{p}.attn.b_O"])
        resid = hook(f"{p}.hook_resid_mid", resid + attn_out)
        x = _ln(resid, sd[f"{p}.ln2.w"], sd[f"{p}.ln2.b"], cfg["eps"], f"{p}.ln2", hook)
        pre = hook(f"{p}.mlp.hook_pre", x @ sd[f"{p}.mlp.W_in"] + sd[f"{p}.mlp.b_in"])
        post = hook(f"{p}.mlp.hook_post", np.maximum(pre, 0))
        mlp_out = hook(f"{p}.hook_mlp_out", post @ sd[f"{p}.mlp.W_out"] + sd[f"{p}.mlp.b_out"])
        resid = hook(f"{p}.hook_resid_post", resid + mlp_out)
    x = _ln(resid, sd["ln_final.w"], sd["ln_final.b"], cfg["eps"], "ln_final", hook)
    return x @ sd["unembed.W_U"] + sd["unembed.b_U"], cache


def assert_close(got: np.ndarray, want: np.ndarray, rel: float = 1e-4, what: str = "") -> None:
    """Equal within `rel` of the reference's largest magnitude (float32 against float64)."""
    got, want = np.asarray(got, dtype=np.float64), np.asarray(want, dtype=np.float64)
    assert got.shape == want.shape, f"{what}: shape {got.shape} != {want.shape}"
    finite = np.isfinite(want)
    assert (np.isfinite(got) == finite).all(), f"{what}: infinities differ"
    err = np.abs(got[finite] - want[finite]).max(initial=0.0)
    scale = np.abs(want[finite]).max(initial=0.0)
    assert err <= rel * max(scale, 1e-30), f"{what}: max error {err:.3g} > {rel} x {scale:.3g}"


@pytest.fixture()
def fresh_dir(tmp_path) -> Path:
    d = tmp_path / "run"
    shutil.rmtree(d, ignore_errors=True)
    return d
