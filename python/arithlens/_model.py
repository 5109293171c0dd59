"""The Python API: :class:`Model` (a loaded model), :class:`Run` (a run folder) and the
functions that make them. Every computation is a call into the Rust library."""

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, Iterable, List, Optional, Sequence, Tuple, Union

import numpy as np

from . import _native, _progress
from ._progress import ProgressArg

PathLike = Union[str, "os.PathLike[str]"]
Questions = Union[str, Sequence[str]]
NamesFilter = Union[None, str, Sequence[str], Callable[[str], bool]]


def _call(fn: Callable[..., Any], progress: ProgressArg, *args: Any, **kwargs: Any) -> Any:
    """Calls a long native function with a progress reporter, closing its bars afterwards."""
    callback = _progress.reporter(progress)
    try:
        return fn(*args, progress=callback, **kwargs)
    finally:
        _progress.close(callback)


@dataclass(frozen=True)
class Intervention:
    """One change to an activation during a forward pass, made by the Rust engine.

    Build them with :func:`zero`, :func:`mean`, :func:`patch` and :func:`scale`. ``hook`` is a
    TransformerLens hook name with positions on axis 1 (e.g. ``blocks.0.attn.hook_z``,
    ``blocks.0.hook_resid_post``, ``blocks.0.mlp.hook_post``); ``positions`` are absolute
    positions (None: every position); ``heads`` select heads of hook_q/k/v/z and ``neurons``
    single features (MLP neurons, residual dimensions).
    """

    kind: str
    hook: str
    positions: Optional[Tuple[int, ...]] = None
    heads: Optional[Tuple[int, ...]] = None
    neurons: Optional[Tuple[int, ...]] = None
    factor: float = 1.0
    source: Optional[Tuple[str, ...]] = None

    def _spec(self) -> tuple:
        return (self.kind, self.hook, _list(self.positions), _list(self.heads), _list(self.neurons), float(self.factor), _list(self.source))


def _list(v: Optional[Iterable[Any]]) -> Optional[list]:
    return None if v is None else list(v)


def _tuple(v: Optional[Iterable[Any]]) -> Optional[tuple]:
    if v is None:
        return None
    if isinstance(v, (int, np.integer)):
        return (int(v),)
    return tuple(int(x) for x in v)


def zero(hook: str, positions: Optional[Iterable[int]] = None, heads: Optional[Iterable[int]] = None,
         neurons: Optional[Iterable[int]] = None) -> Intervention:
    """Zero ablation: the selected values are set to 0."""
    return Intervention("zero", hook, _tuple(positions), _tuple(heads), _tuple(neurons))


def mean(hook: str, positions: Optional[Iterable[int]] = None, heads: Optional[Iterable[int]] = None,
         neurons: Optional[Iterable[int]] = None) -> Intervention:
    """Mean ablation: the selected values are replaced by their mean over the reference
    questions of the call (``reference=`` of :meth:`Model.run_with_hooks`)."""
    return Intervention("mean", hook, _tuple(positions), _tuple(heads), _tuple(neurons))


def patch(hook: str, source: Questions, positions: Optional[Iterable[int]] = None,
          heads: Optional[Iterable[int]] = None, neurons: Optional[Iterable[int]] = None) -> Intervention:
    """Activation patching: question i gets the selected values of ``source[i]``'s clean pass."""
    src = (source,) if isinstance(source, str) else tuple(source)
    return Intervention("patch", hook, _tuple(positions), _tuple(heads), _tuple(neurons), 1.0, src)


def scale(hook: str, factor: float, positions: Optional[Iterable[int]] = None,
          heads: Optional[Iterable[int]] = None, neurons: Optional[Iterable[int]] = None) -> Intervention:
    """Scaling: the selected values are multiplied by ``factor``."""
    return Intervention("scale", hook, _tuple(positions), _tuple(heads), _tuple(neurons), float(factor))


@dataclass(frozen=True)
class Answer:
    """A model's greedy answer to one question (:meth:`Model.ask`)."""

    question: str
    """The question, normalised (e.g. ``"12345+67890="``)."""
    answer: str
    """The model's answer tokens as text (e.g. ``"080235"``, or ``"+0080235"`` with a sign)."""
    value: Optional[int]
    """The model's answer as a number (None if its tokens are not one)."""
    true_answer: int
    """The right answer."""
    true_tokens: str
    """The right answer's tokens as text."""
    probabilities: Dict[str, float]
    """Per answer token (``sign``, ``A5`` .. ``A0``), the probability the model gave its choice."""

    @property
    def correct(self) -> bool:
        """Whether every answer token is right."""
        return self.answer == self.true_tokens


@dataclass(frozen=True)
class Predictions:
    """Teacher-forced answers of :meth:`Model.run_with_hooks`."""

    tokens: np.ndarray
    """The argmax token at each answer position, ``[n, n_answer]`` int64."""
    loss: np.ndarray
    """The negative log-likelihood of the true token at each answer position, ``[n, n_answer]``."""
    true_tokens: np.ndarray
    """The true answer tokens, ``[n, n_answer]`` int64."""

    @property
    def correct(self) -> np.ndarray:
        """Per question, whether every answer token is right, ``[n]`` bool."""
        return (self.tokens == self.true_tokens).all(axis=1)

    @property
    def accuracy(self) -> float:
        """The share of questions answered right."""
        return float(self.correct.mean()) if len(self.correct) else float("nan")


class Model:
    """A trained model and the task it answers, loaded with :func:`load`."""

    def __init__(self, native: "_native.NativeModel") -> None:
        self._m = native
        self._config: Dict[str, Any] = json.loads(native.config_json)

    def __repr__(self) -> str:
        c = self._config
        return (f"Model({self.name!r}: {self.n_digits}-digit {', '.join(self.ops)} in format {self.format}, "
                f"{c['n_layers']} layer(s), {c['n_heads']} heads, d_model {c['d_model']})")

    @property
    def config(self) -> Dict[str, Any]:
        """The ``HookedTransformerConfig`` fields (n_layers, n_heads, d_model, d_head, d_mlp,
        d_vocab, d_vocab_out, n_ctx, act_fn, normalization_type, ...)."""
        return dict(self._config)

    @property
    def name(self) -> str:
        """The run or model name."""
        return self._m.name

    @property
    def format(self) -> str:
        """The token format: ``"paper1"`` (x+y=A) or ``"paper2_sign"`` (x±y=±A)."""
        return self._m.format

    @property
    def n_digits(self) -> int:
        """The operand width."""
        return self._m.n_digits

    @property
    def ops(self) -> List[str]:
        """The operations it answers: ``"add"``, ``"sub"``."""
        return list(self._m.ops)

    @property
    def sha256(self) -> Optional[str]:
        """The SHA-256 of the model file (what derived files record as their provenance)."""
        return self._m.sha256

    @property
    def path(self) -> Optional[Path]:
        """The model file or run folder it was loaded from."""
        p = self._m.path
        return None if p is None else Path(p)

    @property
    def n_ctx(self) -> int:
        """Tokens in a question with its answer."""
        return self._m.layout[0]

    @property
    def answer_start(self) -> int:
        """Position of the first answer token (predicted at ``answer_start - 1``)."""
        return self._m.layout[1]

    @property
    def n_answer(self) -> int:
        """Answer tokens per question."""
        return self._m.layout[2]

    @property
    def token_names(self) -> List[str]:
        """The text of each token id."""
        return list(self._m.token_names)

    @property
    def answer_names(self) -> List[str]:
        """The answer tokens' names: ``sign`` (paper2_sign), then ``A<n>`` .. ``A0``."""
        return list(self._m.answer_names)

    @property
    def hook_names(self) -> List[str]:
        """Every hook name, in forward order (TransformerLens names)."""
        return list(self._m.hook_names)

    def ask(self, question: str) -> Answer:
        """The greedy answer to ``question`` (e.g. ``"12345+67890="``), the true answer and
        each answer token's probability. Raises ``ValueError`` for a question the model
        cannot answer (wrong width or operation)."""
        text, toks, probs, truth, value, got = self._m.ask(question)
        names = self._m.token_names
        return Answer(
            question=text,
            answer="".join(names[t] for t in toks),
            value=None if got is None else int(got),
            true_answer=int(value),
            true_tokens="".join(names[t] for t in truth),
            probabilities=dict(zip(self._m.answer_names, (float(p) for p in probs))),
        )

    def to_tokens(self, questions: Questions) -> np.ndarray:
        """Token rows ``[len(questions), n_ctx]`` (int64) of questions with their true answers,
        as the model reads them (the rows TransformerLens's ``run_with_cache`` takes)."""
        qs = [questions] if isinstance(questions, str) else list(questions)
        return self._m.to_tokens(qs)

    def random_questions(self, count: int, seed: int = 1) -> List[str]:
        """``count`` random questions per operation of the model, drawn with ``seed``."""
        return self._m.random_questions(count, seed)

    def _names(self, names_filter: NamesFilter) -> Optional[List[str]]:
        if names_filter is None:
            return None
        if isinstance(names_filter, str):
            return [names_filter]
        if callable(names_filter):
            names = [n for n in self.hook_names if names_filter(n)]
            if not names:
                from ._errors import InvalidValueError
                raise InvalidValueError("names_filter selects no hook: see Model.hook_names for the names")
            return names
        return list(names_filter)

    def run_with_cache(self, questions_or_tokens: Union[Questions, np.ndarray, Any],
                       names_filter: NamesFilter = None, batch: int = 1024) -> Tuple[np.ndarray, Dict[str, np.ndarray]]:
        """A full forward pass, as TransformerLens's ``run_with_cache``: the logits
        ``[batch, pos, d_vocab_out]`` and a dict of activations under TransformerLens hook names
        and shapes (``blocks.0.attn.hook_pattern`` is ``[batch, head, query, key]``).

        ``questions_or_tokens`` is a question, a list of questions, or token ids ``[batch, pos]``
        (numpy, torch or lists; ``pos`` up to ``n_ctx``). ``names_filter`` keeps only some hooks:
        a name, a list of names or a function of the name (None keeps all). The pass runs in
        batches of ``batch`` rows with the GIL released.
        """
        if isinstance(questions_or_tokens, str) or (
                isinstance(questions_or_tokens, (list, tuple)) and questions_or_tokens and isinstance(questions_or_tokens[0], str)):
            tokens = self.to_tokens(questions_or_tokens)
        else:
            if hasattr(questions_or_tokens, "detach"):  # a torch tensor
                questions_or_tokens = questions_or_tokens.detach().cpu().numpy()
            tokens = np.ascontiguousarray(np.asarray(questions_or_tokens), dtype=np.int64)
            if tokens.ndim == 1:
                tokens = tokens[None, :]
            if tokens.ndim != 2:
                from ._errors import InvalidValueError
                raise InvalidValueError(f"tokens of shape {tokens.shape}: give [batch, pos] token ids")
        return self._m.run_with_cache(tokens, self._names(names_filter), batch)

    def run_with_hooks(self, questions: Questions, interventions: Union[Intervention, Sequence[Intervention]],
                       reference: Union[None, int, Sequence[str]] = None, seed: int = 1, batch: int = 1024) -> Predictions:
        """Teacher-forced answers and per-digit losses of ``questions`` under ``interventions``
        (:func:`zero`, :func:`mean`, :func:`patch`, :func:`scale`), all applied in one pass by
        the same engine ``arithlens analyze`` uses. Mean ablations average over ``reference``:
        a list of questions, or a count of random ones drawn with ``seed`` (default 1000)."""
        qs = [questions] if isinstance(questions, str) else list(questions)
        ivs = [interventions] if isinstance(interventions, Intervention) else list(interventions)
        if any(iv.kind == "mean" for iv in ivs):
            ref = self.random_questions(1000 if reference is None else reference, seed) if reference is None or isinstance(reference, int) else list(reference)
        else:
            ref = []
        tokens, loss = self._m.intervene(qs, [iv._spec() for iv in ivs], ref, batch)
        truth = self.to_tokens(qs)[:, self.answer_start:self.answer_start + self.n_answer]
        return Predictions(tokens=tokens, loss=loss, true_tokens=truth)

    def state_dict(self) -> Dict[str, np.ndarray]:
        """The weights under TransformerLens names and shapes (``embed.W_E`` [d_vocab, d_model],
        ``blocks.0.attn.W_Q`` [n_heads, d_model, d_head], ...), float32."""
        return self._m.state_dict()

    def evaluate(self, questions: Optional[int] = 1_000_000, seed: Optional[int] = None, exhaustive: bool = False,
                 per_class: Optional[int] = None, top_k: Optional[int] = None, threads: Optional[int] = None,
                 progress: ProgressArg = True) -> Dict[str, Any]:
        """Accuracy on ``questions`` random questions per operation (or every question with
        ``exhaustive``, n <= 3), per complexity class, and the hardest questions: the report
        ``arithlens eval`` writes to eval.json, as a dict. Options left None take the command
        line's defaults. A model loaded from a run folder keeps its progress there, so an
        interrupted evaluation continues where it stopped."""
        text = _call(self._m.evaluate, progress, questions=questions, seed=seed, exhaustive=exhaustive,
                     per_class=per_class, top_k=top_k, threads=threads)
        return json.loads(text)

    def analyze(self, questions: Optional[int] = None, seed: Optional[int] = None, pairs: Optional[int] = None,
                siblings: Optional[int] = None, threads: Optional[int] = None, progress: ProgressArg = True,
                circuit_questions: Optional[int] = None, circuit_edges: Optional[int] = None,
                eap_steps: Optional[int] = None, circuit_class: Optional[str] = None) -> Dict[str, Any]:
        """Finds the model's algorithm (ablations, attention staircases, sub-task tags, the circuit
        between the useful nodes by path patching, symbolic check): the analysis ``arithlens
        analyze`` writes to analysis.json, as a dict (nothing is written). Options left None take
        the command line's defaults (``circuit_questions=0`` skips the circuit; ``circuit_class="S3"``
        draws every circuit question from that complexity class)."""
        text = _call(self._m.analyze, progress, questions=questions, seed=seed, pairs=pairs, siblings=siblings, threads=threads,
                     circuit_questions=circuit_questions, circuit_edges=circuit_edges, eap_steps=eap_steps,
                     circuit_class=circuit_class)
        return json.loads(text)

    def to_transformer_lens(self, device: str = "cpu") -> Any:
        """This model in TransformerLens: a ``HookedTransformer`` under TransformerLens 2.x/3.x,
        a ``TransformerBridge`` under 4.x, with the same weights (logits equal within float32
        tolerance). Needs ``torch`` and ``transformer_lens`` (imported only here)."""
        from ._tl import to_transformer_lens
        return to_transformer_lens(self, device)


def load(path: PathLike, allow_non_finite: bool = False) -> Model:
    """Loads a model: a run folder, a model file, or a TransformerLens state dict saved with
    safetensors (its task is read off the vocabulary and context length). Raises
    ``FileNotFoundError`` when there is none, ``ValueError`` when it is not a model."""
    return Model(_native.NativeModel.load(os.fspath(path), allow_non_finite))


def _read_json(path: Path) -> Optional[Dict[str, Any]]:
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except FileNotFoundError:
        return None


@dataclass
class Run:
    """A run folder written by :func:`train` or :func:`run`."""

    dir: Path
    """The folder."""
    _model: Optional[Model] = field(default=None, repr=False)

    @property
    def model(self) -> Model:
        """The trained model (loaded on first use)."""
        if self._model is None:
            self._model = load(self.dir)
        return self._model

    @property
    def training(self) -> Optional[Dict[str, Any]]:
        """training.json: the config and the loss records, or None."""
        return _read_json(self.dir / "training.json")

    @property
    def eval(self) -> Optional[Dict[str, Any]]:
        """eval.json, or None."""
        return _read_json(self.dir / "eval.json")

    @property
    def analysis(self) -> Optional[Dict[str, Any]]:
        """analysis.json, or None."""
        return _read_json(self.dir / "analysis.json")

    @property
    def report_path(self) -> Optional[Path]:
        """report.html, if written."""
        p = self.dir / "report.html"
        return p if p.exists() else None


def _overrides(steps: Optional[int], seed: Optional[int], overrides: Dict[str, Any]) -> List[str]:
    out = []
    for k, v in overrides.items():
        out.append(f"{k}={str(v).lower() if isinstance(v, bool) else v}")
    if steps is not None:
        out.append(f"steps={steps}")
    if seed is not None:
        out.append(f"seed={seed}")
    return out


def train(preset: str = "paper1", out: Optional[PathLike] = None, steps: Optional[int] = None, seed: Optional[int] = None,
          threads: Optional[int] = None, resume: bool = False, force: bool = False, progress: ProgressArg = True,
          **overrides: Any) -> Run:
    """Trains a model (as ``arithlens train``) into ``out`` (default ``runs/NAME``) and returns
    the run. ``overrides`` set config fields (``d_model=256``, ``lr=1e-3``, ``n_digits=3``).
    A folder holding a model is never replaced without ``force``. KeyboardInterrupt saves a
    checkpoint and stops; ``resume=True`` continues from it."""
    d = _call(_native.train, progress, preset, _overrides(steps, seed, overrides),
              out=None if out is None else os.fspath(out), resume=resume, force=force, threads=threads)
    return Run(Path(d))


def run(preset: str = "paper1", out: Optional[PathLike] = None, steps: Optional[int] = None, seed: Optional[int] = None,
        threads: Optional[int] = None, resume: bool = False, force: bool = False, progress: ProgressArg = True,
        **overrides: Any) -> Run:
    """The whole pipeline (as ``arithlens run``): trains (unless the folder holds a trained
    model), evaluates, analyses and writes report.html, each step skipped when its file is
    current for the model."""
    d = _call(_native.run, progress, preset, _overrides(steps, seed, overrides),
              out=None if out is None else os.fspath(out), resume=resume, force=force, threads=threads)
    return Run(Path(d))


def report(run_dir: PathLike) -> Path:
    """Writes ``run_dir/report.html`` and ``run_dir/figures/*.svg`` from what the run folder
    holds, and returns the page's path."""
    return Path(_native.report(os.fspath(run_dir)))


def presets() -> List[str]:
    """The presets :func:`train` and :func:`run` take."""
    return list(_native.presets())
