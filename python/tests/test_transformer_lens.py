"""Model.to_transformer_lens() against real TransformerLens (a TransformerBridge on 4.x, a
HookedTransformer on 2.x/3.x): logits and the cached hook_pattern, hook_z and hook_resid_post
equal to arithlens's within 1e-4 relative, for 1- and 2-layer models in both token formats,
and interventions equal to TransformerLens's run_with_hooks."""

import numpy as np
import pytest

from conftest import assert_close

torch = pytest.importorskip("torch", reason="torch is not installed: the TransformerLens tests need torch and transformer_lens")
transformer_lens = pytest.importorskip("transformer_lens", reason="transformer_lens is not installed: pip install transformer_lens")

import arithlens  # noqa: E402
from arithlens._tl import major_version  # noqa: E402


@pytest.fixture(scope="module")
def converted(models):
    return {name: m.to_transformer_lens() for name, m in models.items()}


def test_the_installed_generation_gets_its_class(converted):
    tl = next(iter(converted.values()))
    want = "TransformerBridge" if major_version(transformer_lens) >= 4 else "HookedTransformer"
    assert type(tl).__name__ == want


@pytest.mark.parametrize("name", ["paper1_l1", "paper1_l2", "sign_l1", "sign_l2"])
def test_logits_and_hooks_equal_arithlens(models, converted, name):
    m, tl = models[name], converted[name]
    toks = m.to_tokens(m.random_questions(16, seed=21))
    logits, cache = m.run_with_cache(toks)
    with torch.no_grad():
        tl_logits, tl_cache = tl.run_with_cache(torch.from_numpy(toks))
    assert_close(logits, tl_logits.numpy(), what=f"{name} logits")
    for l in range(m.config["n_layers"]):
        for hook in ("attn.hook_pattern", "attn.hook_z", "hook_resid_post"):
            k = f"blocks.{l}.{hook}"
            assert_close(cache[k], tl_cache[k].numpy(), what=f"{name} {k}")


def test_zero_ablation_equals_transformer_lens_run_with_hooks(models, converted):
    m, tl = models["sign_l2"], converted["sign_l2"]
    qs = m.random_questions(8, seed=2)
    got = m.run_with_hooks(qs, arithlens.zero("blocks.1.attn.hook_z", heads=[2]))

    def hook(z, hook):
        z[:, :, 2] = 0
        return z

    with torch.no_grad():
        logits = tl.run_with_hooks(torch.from_numpy(m.to_tokens(qs)), fwd_hooks=[("blocks.1.attn.hook_z", hook)]).numpy()
    s = m.answer_start
    np.testing.assert_array_equal(got.tokens, logits[:, s - 1:s - 1 + m.n_answer].argmax(-1))
