//! Hook points with TransformerLens names, so that every intermediate activation can be read or
//! changed during a forward pass (`run_with_hooks` in TransformerLens), and the activation cache
//! built on them (`run_with_cache`).

use std::collections::BTreeMap;

/// Where in the forward pass a hook fires. Names and shapes follow TransformerLens.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum HookPoint {
    /// `hook_embed` [batch, pos, d_model].
    Embed,
    /// `hook_pos_embed` [batch, pos, d_model].
    PosEmbed,
    /// `blocks.L.hook_resid_pre` [batch, pos, d_model].
    ResidPre(usize),
    /// `blocks.L.ln1.hook_scale` [batch, pos, 1] (read-only).
    Ln1Scale(usize),
    /// `blocks.L.ln1.hook_normalized` [batch, pos, d_model].
    Ln1Normalized(usize),
    /// `blocks.L.attn.hook_q` [batch, pos, head, d_head].
    Q(usize),
    /// `blocks.L.attn.hook_k` [batch, pos, head, d_head].
    K(usize),
    /// `blocks.L.attn.hook_v` [batch, pos, head, d_head].
    V(usize),
    /// `blocks.L.attn.hook_attn_scores` [batch, head, query pos, key pos].
    AttnScores(usize),
    /// `blocks.L.attn.hook_pattern` [batch, head, query pos, key pos].
    Pattern(usize),
    /// `blocks.L.attn.hook_z` [batch, pos, head, d_head].
    Z(usize),
    /// `blocks.L.hook_attn_out` [batch, pos, d_model].
    AttnOut(usize),
    /// `blocks.L.hook_resid_mid` [batch, pos, d_model] (not in attention-only models).
    ResidMid(usize),
    /// `blocks.L.ln2.hook_scale` [batch, pos, 1] (read-only).
    Ln2Scale(usize),
    /// `blocks.L.ln2.hook_normalized` [batch, pos, d_model].
    Ln2Normalized(usize),
    /// `blocks.L.mlp.hook_pre` [batch, pos, d_mlp].
    MlpPre(usize),
    /// `blocks.L.mlp.hook_post` [batch, pos, d_mlp].
    MlpPost(usize),
    /// `blocks.L.hook_mlp_out` [batch, pos, d_model].
    MlpOut(usize),
    /// `blocks.L.hook_resid_post` [batch, pos, d_model].
    ResidPost(usize),
    /// `ln_final.hook_scale` [batch, pos, 1] (read-only).
    LnFinalScale,
    /// `ln_final.hook_normalized` [batch, pos, d_model].
    LnFinalNormalized,
}

impl HookPoint {
    /// The TransformerLens hook name, e.g. `blocks.0.attn.hook_pattern`.
    pub fn name(&self) -> String {
        use HookPoint::*;
        let (l, suffix) = match *self {
            Embed => return "hook_embed".into(),
            PosEmbed => return "hook_pos_embed".into(),
            LnFinalScale => return "ln_final.hook_scale".into(),
            LnFinalNormalized => return "ln_final.hook_normalized".into(),
            ResidPre(l) => (l, "hook_resid_pre"),
            Ln1Scale(l) => (l, "ln1.hook_scale"),
            Ln1Normalized(l) => (l, "ln1.hook_normalized"),
            Q(l) => (l, "attn.hook_q"),
            K(l) => (l, "attn.hook_k"),
            V(l) => (l, "attn.hook_v"),
            AttnScores(l) => (l, "attn.hook_attn_scores"),
            Pattern(l) => (l, "attn.hook_pattern"),
            Z(l) => (l, "attn.hook_z"),
            AttnOut(l) => (l, "hook_attn_out"),
            ResidMid(l) => (l, "hook_resid_mid"),
            Ln2Scale(l) => (l, "ln2.hook_scale"),
            Ln2Normalized(l) => (l, "ln2.hook_normalized"),
            MlpPre(l) => (l, "mlp.hook_pre"),
            MlpPost(l) => (l, "mlp.hook_post"),
            MlpOut(l) => (l, "hook_mlp_out"),
            ResidPost(l) => (l, "hook_resid_post"),
        };
        format!("blocks.{l}.{suffix}")
    }

    /// Parses a TransformerLens hook name for a model with `n_layers` layers.
    pub fn parse(name: &str, n_layers: usize) -> Result<HookPoint, super::UnknownHook> {
        let unknown = || super::UnknownHook { name: name.to_string(), n_layers };
        Self::all(n_layers, true, true).into_iter().find(|p| p.name() == name).ok_or_else(unknown)
    }

    /// Every hook point of a model, in forward order.
    pub fn all(n_layers: usize, has_ln: bool, has_mlp: bool) -> Vec<HookPoint> {
        use HookPoint::*;
        let mut v = vec![Embed, PosEmbed];
        for l in 0..n_layers {
            v.push(ResidPre(l));
            if has_ln {
                v.extend([Ln1Scale(l), Ln1Normalized(l)]);
            }
            v.extend([Q(l), K(l), V(l), AttnScores(l), Pattern(l), Z(l), AttnOut(l)]);
            if has_mlp {
                v.push(ResidMid(l));
                if has_ln {
                    v.extend([Ln2Scale(l), Ln2Normalized(l)]);
                }
                v.extend([MlpPre(l), MlpPost(l), MlpOut(l)]);
            }
            v.push(ResidPost(l));
        }
        if has_ln {
            v.extend([LnFinalScale, LnFinalNormalized]);
        }
        v
    }

    /// The block whose pass calls this hook; `None` for the embeddings and `ln_final`.
    pub fn layer(&self) -> Option<usize> {
        use HookPoint::*;
        match *self {
            Embed | PosEmbed | LnFinalScale | LnFinalNormalized => None,
            ResidPre(l) | Ln1Scale(l) | Ln1Normalized(l) | Q(l) | K(l) | V(l) | AttnScores(l) | Pattern(l) | Z(l) | AttnOut(l)
            | ResidMid(l) | Ln2Scale(l) | Ln2Normalized(l) | MlpPre(l) | MlpPost(l) | MlpOut(l) | ResidPost(l) => Some(l),
        }
    }

    /// Which axis of the tensor is the (query) position axis.
    pub fn pos_axis(&self) -> usize {
        match self {
            HookPoint::AttnScores(_) | HookPoint::Pattern(_) => 2,
            _ => 1,
        }
    }
}

/// An activation as a hook sees it: the batch's values in TransformerLens layout. In the last
/// layer of a pass that computes only the answer positions, the position axis starts at
/// `pos_offset` rather than 0.
pub struct HookTensor<'a> {
    /// Row-major values; a hook may change them in place (except `hook_scale`).
    pub data: &'a mut [f32],
    /// TransformerLens shape, with the position axis covering only the computed positions.
    pub shape: Vec<usize>,
    /// Position of index 0 along the position axis.
    pub pos_offset: usize,
}

/// Something that reads or edits activations during a forward pass.
pub trait Hooks {
    /// False only for `NoHooks`, so the plain forward pays nothing for hooks.
    const ACTIVE: bool = true;
    /// Called once per hook point per forward pass, in forward order.
    fn call(&mut self, point: HookPoint, tensor: HookTensor);
}

/// No hooks: the training pass.
pub struct NoHooks;

impl Hooks for NoHooks {
    const ACTIVE: bool = false;
    fn call(&mut self, _: HookPoint, _: HookTensor) {}
}

/// Copies activations of the selected hook points (all of them when `filter` is `None`), keyed by
/// TransformerLens name, as `run_with_cache` does.
#[derive(Default)]
pub struct Cache {
    /// Which names to keep; `None` keeps all.
    pub filter: Option<Vec<String>>,
    /// The cached tensors.
    pub tensors: BTreeMap<String, crate::io::tensors::Tensor>,
}

impl Cache {
    /// A cache keeping only these hook names.
    pub fn only(names: &[&str]) -> Cache {
        Cache { filter: Some(names.iter().map(|s| s.to_string()).collect()), tensors: BTreeMap::new() }
    }

    /// The cached tensor under this name, if any.
    pub fn get(&self, name: &str) -> Option<&crate::io::tensors::Tensor> {
        self.tensors.get(name)
    }
}

impl Cache {
    /// The cached tensors as a safetensors file (what Python opens with
    /// `safetensors.torch.load_file`), keyed by TransformerLens hook name.
    pub fn to_tensor_file(&self) -> crate::io::tensors::TensorFile {
        crate::io::tensors::TensorFile { tensors: self.tensors.clone(), ..Default::default() }
    }
}

impl Hooks for Cache {
    fn call(&mut self, point: HookPoint, t: HookTensor) {
        let name = point.name();
        if self.filter.as_ref().is_some_and(|f| !f.contains(&name)) {
            return;
        }
        let tensor = crate::io::tensors::Tensor { shape: t.shape.clone(), data: t.data.to_vec() };
        self.tensors.insert(name, tensor);
    }
}

/// Runs several hooks in order at every point (e.g. an intervention then a cache).
impl<A: Hooks, B: Hooks> Hooks for (A, B) {
    fn call(&mut self, point: HookPoint, t: HookTensor) {
        let HookTensor { data, shape, pos_offset } = t;
        self.0.call(point, HookTensor { data, shape: shape.clone(), pos_offset });
        self.1.call(point, HookTensor { data, shape, pos_offset });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for p in HookPoint::all(2, true, true) {
            assert_eq!(HookPoint::parse(&p.name(), 2).unwrap(), p);
        }
        assert_eq!(HookPoint::Pattern(1).name(), "blocks.1.attn.hook_pattern");
        assert!(HookPoint::parse("blocks.0.attn.hook_zz", 1).unwrap_err().to_string().contains("unknown hook point"));
    }
}
