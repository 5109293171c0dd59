"""``Model.to_transformer_lens()``: the model as a TransformerLens module.

TransformerLens 4 removed ``HookedTransformer``; there the model becomes a
``TransformerBridge`` booted natively from a ``TransformerBridgeConfig`` and loaded with
``convert_tl_checkpoint`` (which maps HookedTransformer state-dict names, the ones arithlens
writes, to the bridge's). TransformerLens 2.x and 3.x get a ``HookedTransformer``. torch and
transformer_lens are imported only here.
"""

from typing import Any, Dict

_MISSING = ("Model.to_transformer_lens() needs torch and transformer_lens, which are not installed "
            "({}): pip install torch transformer_lens (TransformerLens 4.x gives a TransformerBridge, "
            "2.x and 3.x a HookedTransformer)")

# HookedTransformerConfig fields arithlens writes that both TransformerLens generations take.
_FIELDS = ("n_layers", "n_heads", "d_model", "d_head", "d_mlp", "d_vocab", "d_vocab_out", "n_ctx", "act_fn",
           "normalization_type", "attn_only", "eps", "seed")


def _config(model: Any) -> Dict[str, Any]:
    c = model.config
    cfg = {k: c[k] for k in _FIELDS if k in c}
    if c.get("initializer_range") is not None:
        cfg["initializer_range"] = c["initializer_range"]
    return cfg


def major_version(transformer_lens: Any) -> int:
    """The major version of the installed TransformerLens."""
    try:
        from importlib.metadata import version
        v = version("transformer_lens")
    except Exception:
        v = getattr(transformer_lens, "__version__", "0")
    try:
        return int(str(v).split(".")[0])
    except ValueError:
        return 0


def to_transformer_lens(model: Any, device: str = "cpu") -> Any:
    """See :meth:`arithlens.Model.to_transformer_lens`."""
    try:
        import torch
        import transformer_lens
    except ImportError as e:
        raise ImportError(_MISSING.format(e)) from e
    state = {k: torch.from_numpy(v.copy()) for k, v in model.state_dict().items()}
    if major_version(transformer_lens) >= 4:
        tl = _bridge(model, state)
    else:
        tl = _hooked(model, state)
    return tl.to(device).eval()


def _hooked(model: Any, state: Dict[str, Any]) -> Any:
    from transformer_lens import HookedTransformer, HookedTransformerConfig
    tl = HookedTransformer(HookedTransformerConfig(**_config(model)))
    missing, unexpected = tl.load_state_dict(state, strict=False)
    # Only the causal-mask buffers are not in the state dict.
    left = [k for k in missing if not k.endswith(("attn.mask", "attn.IGNORE"))]
    if left or unexpected:
        raise ValueError(f"the weights do not fit HookedTransformer: missing {left}, unexpected {list(unexpected)}")
    return tl


def _bridge(model: Any, state: Dict[str, Any]) -> Any:
    import transformer_lens.model_bridge.sources  # noqa: F401  (registers TransformerBridge.boot_native)
    from transformer_lens.config import TransformerBridgeConfig
    from transformer_lens.model_bridge import TransformerBridge
    from transformer_lens.utilities.tl_checkpoint_conversion import convert_tl_checkpoint
    cfg = TransformerBridgeConfig(**_config(model), architecture="TransformerLensNative",
                                  positional_embedding_type="standard")
    bridge = TransformerBridge.boot_native(cfg)
    bridge.load_state_dict(convert_tl_checkpoint(state, cfg), strict=True)
    return bridge
