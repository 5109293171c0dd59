"""The Python API on tiny models: loading, questions, tokens, run_with_cache (equal to the
command line's `arithlens cache` and to a plain numpy forward pass), state dicts, evaluation,
analysis and the whole pipeline."""

import json
import struct
import subprocess

import numpy as np
import pytest

import arithlens
from conftest import assert_close, reference_forward


def test_model_describes_its_task(models):
    m = models["paper1_l1"]
    assert (m.format, m.n_digits, m.ops, m.n_ctx, m.answer_start, m.n_answer) == ("paper1", 2, ["add"], 9, 6, 3)
    c = m.config
    assert (c["n_layers"], c["n_heads"], c["d_model"], c["d_vocab"], c["n_ctx"], c["act_fn"]) == (1, 3, 64, 12, 9, "relu")
    s = models["sign_l2"]
    assert (s.format, s.ops, s.n_ctx, s.answer_names) == ("paper2_sign", ["add", "sub"], 10, ["sign", "A2", "A1", "A0"])
    assert s.config["n_layers"] == 2 and models["sign_l1"].config["n_layers"] == 1
    assert len(m.sha256) == 64 and m.path.is_dir()


def test_to_tokens_writes_question_and_answer(models):
    toks = models["paper1_l1"].to_tokens(["12+34=", "99+99="])
    assert toks.dtype == np.int64
    assert toks.tolist() == [[1, 2, 10, 3, 4, 11, 0, 4, 6], [9, 9, 10, 9, 9, 11, 1, 9, 8]]
    sign = models["sign_l1"].to_tokens("03-45=")
    assert sign.tolist() == [[0, 3, 11, 4, 5, 12, 11, 0, 4, 2]]


def test_ask_matches_the_command_line(models, runs, cli):
    m = models["paper1_l1"]
    a = m.ask("47+38=")
    assert a.true_answer == 85 and a.true_tokens == "085" and a.question == "47+38="
    assert list(a.probabilities) == ["A2", "A1", "A0"] and all(0 < p <= 1 for p in a.probabilities.values())
    out = subprocess.run([cli, "ask", str(runs["paper1_l1"]), "47+38="], capture_output=True, text=True, check=True).stdout
    assert f"model:    {a.answer}" in out
    for name, p in a.probabilities.items():
        assert f"{name:>4}: " in out and f"p = {p:.4f}" in out
    assert a.correct == ("\ncorrect" in out)


def _cli_cache(cli, run, questions, tmp_path, hooks=()):
    out = tmp_path / "cache.npz"
    args = [cli, "cache", str(run), *questions, "--out", str(out), "--force"]
    for h in hooks:
        args += ["--hook", h]
    subprocess.run(args, check=True, capture_output=True)
    return np.load(out)


@pytest.mark.parametrize("name", ["paper1_l2", "sign_l2"])
def test_run_with_cache_equals_arithlens_cache(models, runs, cli, tmp_path, name):
    m = models[name]
    qs = m.random_questions(7, seed=5)
    z = _cli_cache(cli, runs[name], qs, tmp_path)
    logits, cache = m.run_with_cache(qs, batch=3)  # several batches, the last one short
    assert sorted(cache) == sorted(m.hook_names) == sorted(k for k in z.files if k not in ("tokens", "questions", "provenance"))
    for k, v in cache.items():
        assert v.dtype == np.float32 and v.shape == z[k].shape, k
        np.testing.assert_array_equal(v, z[k], err_msg=k)
    assert np.array_equal(z["tokens"], m.to_tokens(qs))
    assert logits.shape == (len(qs), m.n_ctx, m.config["d_vocab_out"])


@pytest.mark.parametrize("name", list(("paper1_l1", "sign_l2")))
def test_run_with_cache_equals_a_numpy_forward_pass(models, name):
    m = models[name]
    toks = m.to_tokens(m.random_questions(5, seed=9))
    logits, cache = m.run_with_cache(toks)
    want_logits, want = reference_forward(m.state_dict(), m.config, toks)
    assert_close(logits, want_logits, what="logits")
    for k in m.hook_names:
        assert_close(cache[k], want[k], what=k)


def test_run_with_cache_takes_tokens_names_and_short_rows(models):
    m = models["paper1_l2"]
    qs = m.random_questions(4, seed=2)
    full_logits, full = m.run_with_cache(qs)
    toks = m.to_tokens(qs)
    logits, cache = m.run_with_cache(toks[:, :5].tolist(), names_filter=lambda n: n.endswith("hook_pattern"))
    assert sorted(cache) == ["blocks.0.attn.hook_pattern", "blocks.1.attn.hook_pattern"]
    assert cache["blocks.1.attn.hook_pattern"].shape == (4, 3, 5, 5)
    assert_close(logits, full_logits[:, :5], rel=1e-6, what="causal prefix")
    assert m.run_with_cache(qs, names_filter=[])[1] == {}
    _, one = m.run_with_cache(toks[0], names_filter="blocks.0.hook_resid_post")
    np.testing.assert_array_equal(one["blocks.0.hook_resid_post"][0], full["blocks.0.hook_resid_post"][0])


def _safetensors(path, tensors):
    """A safetensors file written by hand (no metadata): what safetensors.numpy.save_file writes."""
    header, offset, blobs = {}, 0, []
    for k, v in tensors.items():
        b = np.ascontiguousarray(v, dtype="<f4").tobytes()
        header[k] = {"dtype": "F32", "shape": list(v.shape), "data_offsets": [offset, offset + len(b)]}
        offset += len(b)
        blobs.append(b)
    h = json.dumps(header).encode()
    h += b" " * (-len(h) % 8)
    path.write_bytes(struct.pack("<Q", len(h)) + h + b"".join(blobs))


def test_a_transformer_lens_state_dict_loads(models, tmp_path):
    m = models["sign_l1"]
    path = tmp_path / "tl.safetensors"
    _safetensors(path, m.state_dict())
    back = arithlens.load(path)
    assert (back.format, back.n_digits, back.config["n_layers"]) == ("paper2_sign", 2, 1)
    qs = [q for q in m.random_questions(3, seed=4) if "+" in q]  # no metadata: read as addition only
    np.testing.assert_array_equal(back.run_with_cache(qs)[0], m.run_with_cache(qs)[0])


def test_evaluate_equals_the_command_line(models, runs, cli):
    m = models["paper1_l1"]
    got = m.evaluate(exhaustive=True, per_class=50, progress=False)
    out = subprocess.run([cli, "eval", str(runs["paper1_l1"]), "--exhaustive", "--per-class", "50", "--json"],
                         capture_output=True, text=True, check=True).stdout
    want = json.loads(out)
    assert got["ops"][0]["questions"] == 10_000 and got["ops"][0]["exhaustive"]
    for k in ("questions", "failures", "accuracy", "random", "stratified", "top_loss"):
        assert got["ops"][0][k] == want["ops"][0][k], k


def test_analyze_returns_the_analysis(models):
    a = models["paper1_l1"].analyze(questions=200, pairs=20, siblings=0, progress=False)
    assert a["model"]["n_digits"] == 2 and a["options"]["questions"] == 200
    assert 0 <= a["accuracy"] <= 1 and isinstance(a["nodes"], list) and "findings" in a


def test_analyze_refuses_a_circuit_class_the_model_lacks(models):
    with pytest.raises(ValueError, match=r"circuit_class: is not a class of this 2-digit model: its classes are S0, S1, S2"):
        models["paper1_l1"].analyze(questions=200, pairs=20, siblings=0, progress=False, circuit_class="S4")


def test_run_writes_every_file_and_report_rewrites(tmp_path):
    r = arithlens.run("tiny", out=tmp_path / "r", steps=200, progress=False)
    for f in ("model.safetensors", "training.json", "eval.json", "analysis.json", "report.html"):
        assert (r.dir / f).exists(), f
    assert r.eval["ops"][0]["exhaustive"] and r.analysis["model"]["name"] == "tiny" and r.training["records"]
    (r.dir / "report.html").unlink()
    assert arithlens.report(r.dir) == r.dir / "report.html" and r.report_path is not None


def test_progress_reports_reach_a_callback(tmp_path):
    seen = []
    arithlens.train("tiny", out=tmp_path / "p", steps=120, progress=lambda *a: seen.append(a))
    assert seen and all(s == "train" and total == 120 for s, _, total, _ in seen)
    assert seen[-1][1] == 120, "the last report is delivered"


def test_plain_progress_lines_without_tqdm(tmp_path, monkeypatch, capsys):
    import sys
    monkeypatch.setitem(sys.modules, "tqdm.auto", None)
    arithlens.train("tiny", out=tmp_path / "l", steps=60, progress=True)
    assert "train: 60/60" in capsys.readouterr().err


def test_state_dict_has_transformer_lens_names_and_shapes(models):
    sd = models["paper1_l2"].state_dict()
    assert sd["embed.W_E"].shape == (12, 64) and sd["pos_embed.W_pos"].shape == (9, 64)
    assert sd["blocks.1.attn.W_Q"].shape == (3, 64, 21) and sd["blocks.1.attn.W_O"].shape == (3, 21, 64)
    assert sd["blocks.0.mlp.W_in"].shape == (64, 256) and sd["unembed.W_U"].shape == (64, 12)
    assert all(v.dtype == np.float32 for v in sd.values())
