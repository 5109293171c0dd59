"""arithlens in Python: train small transformers on integer arithmetic, evaluate them and
dissect them (activations under TransformerLens hook names, interventions, the paper's
analyses) from a notebook, with the Rust engine underneath.

>>> import arithlens
>>> run = arithlens.train("tiny", out="runs/tiny")          # seconds on a laptop
>>> model = run.model
>>> model.ask("12+34=").answer
'046'
>>> logits, cache = model.run_with_cache(["12+34="], names_filter=lambda n: n.endswith("hook_pattern"))
>>> tl = model.to_transformer_lens()   # HookedTransformer (TL 2.x/3.x) or TransformerBridge (TL 4.x)
"""

from ._errors import ArithlensError, FileError, InvalidValueError, ModelNotFoundError
from ._model import (
    Answer,
    Intervention,
    Model,
    Predictions,
    Run,
    load,
    mean,
    patch,
    presets,
    report,
    run,
    scale,
    train,
    zero,
)
from ._native import __version__

__all__ = [
    "Answer",
    "ArithlensError",
    "FileError",
    "Intervention",
    "InvalidValueError",
    "Model",
    "ModelNotFoundError",
    "Predictions",
    "Run",
    "__version__",
    "load",
    "mean",
    "patch",
    "presets",
    "report",
    "run",
    "scale",
    "train",
    "zero",
]
