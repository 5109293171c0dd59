"""KeyboardInterrupt, raised by a progress callback or sent as SIGINT, stops long calls
cleanly: training keeps its checkpoint (resume=True continues to the same model as a run
never stopped), evaluation keeps its progress, and the call re-raises KeyboardInterrupt."""

import os
import signal
import threading

import pytest

import arithlens


def _stop_at(step):
    def callback(stage, done, total, info):
        if done >= step:
            raise KeyboardInterrupt
    return callback


def test_interrupted_training_resumes_to_the_same_model(tmp_path):
    d = tmp_path / "stopped"
    with pytest.raises(KeyboardInterrupt, match=r"stopped after step \d+ of 900: checkpoint saved in .*resume=True"):
        arithlens.train("tiny", out=d, steps=900, threads=1, progress=_stop_at(40))
    assert (d / "checkpoint.safetensors").exists() and not (d / "model.safetensors").exists()
    arithlens.train("tiny", out=d, steps=900, threads=1, resume=True, progress=False)
    straight = arithlens.train("tiny", out=tmp_path / "straight", steps=900, threads=1, progress=False)
    assert (d / "model.safetensors").read_bytes() == (straight.dir / "model.safetensors").read_bytes()
    assert (d / "training.json").read_bytes() == (straight.dir / "training.json").read_bytes()


def test_sigint_stops_training_with_its_checkpoint(tmp_path):
    started = threading.Event()

    def progress(stage, done, total, info):
        if done >= 20:
            started.set()

    def interrupt():
        if started.wait(60):
            os.kill(os.getpid(), signal.SIGINT)

    t = threading.Thread(target=interrupt)
    t.start()
    try:
        with pytest.raises(KeyboardInterrupt, match="checkpoint saved"):
            arithlens.train("tiny", out=tmp_path / "sig", steps=20_000, threads=1, progress=progress)
    finally:
        t.join()
    assert (tmp_path / "sig" / "checkpoint.safetensors").exists()


def test_interrupted_evaluation_keeps_its_progress(runs, tmp_path):
    import shutil
    d = tmp_path / "ev"
    shutil.copytree(runs["paper1_l1"], d)
    m = arithlens.load(d)
    with pytest.raises(KeyboardInterrupt, match="progress kept"):
        m.evaluate(questions=5_000_000, per_class=10, progress=_stop_at(1))
    assert (d / "eval.partial.json").exists()


def test_interrupted_analysis_stops_and_the_model_stays_usable(models):
    m = models["paper1_l1"]
    with pytest.raises(KeyboardInterrupt, match=r"stopped before analysis stage \w+ \(\d+/\d+\): nothing was written"):
        m.analyze(questions=300, pairs=20, siblings=0, progress=_stop_at(1))
    assert m.ask("12+34=").true_answer == 46


def test_other_callback_errors_propagate(models):
    def broken(*_):
        raise RuntimeError("my callback broke")
    with pytest.raises(RuntimeError, match="my callback broke"):
        models["paper1_l1"].analyze(questions=300, pairs=20, siblings=0, progress=broken)
