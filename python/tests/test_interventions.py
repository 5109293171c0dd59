"""run_with_hooks's zero / mean / patch / scale interventions against the same interventions
made in a plain numpy forward pass."""

import numpy as np
import pytest

import arithlens
from conftest import reference_forward


def _expected(m, questions, hooks):
    toks = m.to_tokens(questions)
    logits, _ = reference_forward(m.state_dict(), m.config, toks, hooks)
    s, n = m.answer_start, m.n_answer
    rows = logits[:, s - 1:s - 1 + n]
    shifted = rows - rows.max(-1, keepdims=True)
    logp = shifted - np.log(np.exp(shifted).sum(-1, keepdims=True))
    truth = toks[:, s:s + n]
    return rows.argmax(-1), -np.take_along_axis(logp, truth[..., None], -1)[..., 0]


def _check(m, questions, interventions, hooks, reference=None):
    got = m.run_with_hooks(questions, interventions, reference=reference, batch=4)
    tokens, loss = _expected(m, questions, hooks)
    np.testing.assert_array_equal(got.tokens, tokens)
    np.testing.assert_allclose(got.loss, loss, rtol=1e-3, atol=1e-4)
    return got


@pytest.mark.parametrize("name", ["paper1_l2", "sign_l2"])
def test_zero_ablating_a_head_at_positions(models, name):
    m = models[name]
    qs = m.random_questions(9, seed=11)
    pos = list(range(m.answer_start - 3, m.n_ctx))

    def zero_head(z):
        z[:, pos, 1] = 0
        return z

    _check(m, qs, arithlens.zero("blocks.0.attn.hook_z", positions=pos, heads=[1]), {"blocks.0.attn.hook_z": zero_head})


def test_mean_ablation_of_neurons(models):
    m = models["paper1_l2"]
    qs, ref = m.random_questions(6, seed=3), m.random_questions(50, seed=4)
    _, ref_cache = m.run_with_cache(ref, names_filter="blocks.1.mlp.hook_post")
    mean = ref_cache["blocks.1.mlp.hook_post"].astype(np.float64).mean(0)

    def mean_neurons(x):
        x[:, :, [3, 7, 100]] = mean[:, [3, 7, 100]]
        return x

    _check(m, qs, arithlens.mean("blocks.1.mlp.hook_post", neurons=[3, 7, 100]), {"blocks.1.mlp.hook_post": mean_neurons}, reference=ref)


def test_patching_and_scaling_together(models):
    m = models["sign_l2"]
    qs, src = m.random_questions(4, seed=6), m.random_questions(4, seed=7)
    _, src_cache = m.run_with_cache(src, names_filter="blocks.0.hook_resid_post")
    patched = src_cache["blocks.0.hook_resid_post"].astype(np.float64)
    p = m.answer_start - 1

    def patch(x):
        x[:, p] = patched[:, p]
        return x

    def scale(z):
        z[:, :, 0] *= 0.5
        return z

    ivs = [arithlens.patch("blocks.0.hook_resid_post", src, positions=[p]), arithlens.scale("blocks.1.attn.hook_z", 0.5, heads=[0])]
    got = _check(m, qs, ivs, {"blocks.0.hook_resid_post": patch, "blocks.1.attn.hook_z": scale})
    clean = m.run_with_hooks(qs, [])
    assert got.true_tokens.shape == clean.tokens.shape and clean.accuracy >= 0


def test_no_intervention_is_the_clean_pass(models):
    m = models["paper1_l1"]
    qs = m.random_questions(5, seed=1)
    clean = m.run_with_hooks(qs, [])
    logits, _ = m.run_with_cache(qs, names_filter=[])
    s = m.answer_start
    np.testing.assert_array_equal(clean.tokens, logits[:, s - 1:s - 1 + m.n_answer].argmax(-1))
