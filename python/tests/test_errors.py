"""Errors raise Python exceptions (ArithlensError subclasses of the built-ins) carrying the
library's messages, the same words the command line prints."""

import subprocess

import numpy as np
import pytest

import arithlens


def test_bad_question_is_a_value_error_with_the_cli_message(models, runs, cli):
    m = models["paper1_l1"]
    with pytest.raises(ValueError) as e:
        m.ask("123+4=")
    assert isinstance(e.value, arithlens.ArithlensError)
    err = subprocess.run([cli, "ask", str(runs["paper1_l1"]), "123+4="], capture_output=True, text=True).stderr
    lib_message = str(e.value).split(": ", 1)[1]
    assert lib_message in err, (lib_message, err)
    with pytest.raises(arithlens.InvalidValueError, match="format paper1 has no token for .-.: use paper2_sign"):
        m.to_tokens(["12-34="])


def test_missing_model_is_file_not_found(tmp_path):
    with pytest.raises(FileNotFoundError, match="no model at .*nothing.safetensors"):
        arithlens.load(tmp_path / "nothing.safetensors")
    with pytest.raises(arithlens.ModelNotFoundError):
        arithlens.load(tmp_path)  # a folder without model.safetensors


def test_a_file_that_is_no_model_is_a_value_error(tmp_path):
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"not a model")
    with pytest.raises(arithlens.ArithlensError, match=str(bad)):
        arithlens.load(bad)


def test_bad_hooks_tokens_and_interventions(models):
    m = models["paper1_l2"]
    with pytest.raises(ValueError, match="unknown hook point 'blocks.5.attn.hook_z'"):
        m.run_with_cache("12+34=", names_filter="blocks.5.attn.hook_z")
    with pytest.raises(ValueError, match="token 12 at row 0, position 1 is outside the vocabulary"):
        m.run_with_cache(np.array([[1, 12, 3]]))
    with pytest.raises(ValueError, match="the model takes 1 to 9 positions"):
        m.run_with_cache(np.zeros((1, 10), dtype=np.int64))
    with pytest.raises(ValueError, match="head 3 does not exist"):
        m.run_with_hooks("12+34=", arithlens.zero("blocks.0.attn.hook_z", heads=[3]))
    with pytest.raises(ValueError, match="hook_pattern: interventions take a hook with positions on axis 1"):
        m.run_with_hooks("12+34=", arithlens.zero("blocks.0.attn.hook_pattern"))
    with pytest.raises(ValueError, match="one source question per question: 1 for 2"):
        m.run_with_hooks(["12+34=", "11+11="], arithlens.patch("blocks.0.hook_resid_post", ["10+10="]))


def test_training_never_replaces_a_model_without_force(runs, tmp_path):
    import shutil
    d = tmp_path / "copy"
    shutil.copytree(runs["paper1_l1"], d)
    before = (d / "model.safetensors").read_bytes()
    with pytest.raises(OSError, match="already exists: pass force=True"):
        arithlens.train("tiny", out=d, steps=20, progress=False)
    assert (d / "model.safetensors").read_bytes() == before
    with pytest.raises(ValueError, match="unknown preset|preset"):
        arithlens.train("no_such_preset", out=tmp_path / "x", progress=False)


def test_to_transformer_lens_without_transformer_lens_says_what_to_install(models, monkeypatch):
    import sys
    monkeypatch.setitem(sys.modules, "transformer_lens", None)
    with pytest.raises(ImportError, match="needs torch and transformer_lens.*pip install torch transformer_lens"):
        models["paper1_l1"].to_transformer_lens()
