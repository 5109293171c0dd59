//! The model's parameters: one flat f32 buffer laid out tensor after tensor, with TransformerLens
//! names and shapes. One flat buffer makes the optimiser a single loop and gradients a mirror
//! image of the weights; the typed index below lets the forward pass find each tensor.

use super::config::ModelConfig;
use super::error::ModelFileError;
use crate::io::tensors::{Tensor, TensorFile};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::ops::Range;

/// One tensor's place in the flat buffer.
#[derive(Clone, Debug)]
pub struct ParamEntry {
    /// TransformerLens state-dict name, e.g. `blocks.0.attn.W_Q`.
    pub name: String,
    /// TransformerLens shape.
    pub shape: Vec<usize>,
    /// Element range in the flat buffer.
    pub range: Range<usize>,
}

impl ParamEntry {
    /// Whether TransformerLens initialises this tensor randomly (`W_*`) rather than to 0 or 1.
    fn is_weight_matrix(&self) -> bool {
        self.name.rsplit('.').next().is_some_and(|n| n.starts_with("W_"))
    }
}

/// A LayerNorm's weight and bias: as ranges of the flat buffer ([`LnIdx`]), or as slices of a
/// buffer in that layout (weights, a gradient) through [`LnIdx::of`] and [`LnIdx::of_mut`].
#[derive(Clone, Debug)]
pub struct Ln<T> {
    /// `w` `[d_model]`.
    pub w: T,
    /// `b` `[d_model]`.
    pub b: T,
}

/// One attention layer's tensors (as ranges, [`AttnIdx`], or slices).
#[derive(Clone, Debug)]
pub struct Attn<T> {
    /// `W_Q` [n_heads, d_model, d_head].
    pub w_q: T,
    /// `W_K` [n_heads, d_model, d_head].
    pub w_k: T,
    /// `W_V` [n_heads, d_model, d_head].
    pub w_v: T,
    /// `W_O` [n_heads, d_head, d_model].
    pub w_o: T,
    /// `b_Q` [n_heads, d_head].
    pub b_q: T,
    /// `b_K` [n_heads, d_head].
    pub b_k: T,
    /// `b_V` [n_heads, d_head].
    pub b_v: T,
    /// `b_O` `[d_model]`.
    pub b_o: T,
}

/// One MLP's tensors (as ranges, [`MlpIdx`], or slices).
#[derive(Clone, Debug)]
pub struct Mlp<T> {
    /// `W_in` [d_model, d_mlp].
    pub w_in: T,
    /// `b_in` `[d_mlp]`.
    pub b_in: T,
    /// `W_out` [d_mlp, d_model].
    pub w_out: T,
    /// `b_out` `[d_model]`.
    pub b_out: T,
}

/// One transformer block's tensors (as ranges, [`BlockIdx`], or slices).
#[derive(Clone, Debug)]
pub struct Block<T> {
    /// `ln1`, absent without normalisation.
    pub ln1: Option<Ln<T>>,
    /// `attn`.
    pub attn: Attn<T>,
    /// `ln2`, absent without normalisation or MLP.
    pub ln2: Option<Ln<T>>,
    /// `mlp`, absent in attention-only models.
    pub mlp: Option<Mlp<T>>,
}

/// The embeddings (as ranges, or slices through [`ParamLayout::embed_of`]).
#[derive(Clone, Debug)]
pub struct Embed<T> {
    /// `embed.W_E` [d_vocab, d_model].
    pub w_e: T,
    /// `pos_embed.W_pos` [n_ctx, d_model].
    pub w_pos: T,
}

/// The final LayerNorm and unembedding (as slices, through [`ParamLayout::unembed_of`]).
#[derive(Clone, Debug)]
pub struct Unembed<T> {
    /// `ln_final`, absent without normalisation.
    pub ln_final: Option<Ln<T>>,
    /// `unembed.W_U` [d_model, d_vocab_out].
    pub w_u: T,
    /// `unembed.b_U` `[d_vocab_out]`.
    pub b_u: T,
}

/// A LayerNorm's place in the flat buffer.
pub type LnIdx = Ln<Range<usize>>;
/// An attention layer's place in the flat buffer.
pub type AttnIdx = Attn<Range<usize>>;
/// An MLP's place in the flat buffer.
pub type MlpIdx = Mlp<Range<usize>>;
/// A block's place in the flat buffer.
pub type BlockIdx = Block<Range<usize>>;

/// Head `h` of a per-head tensor (`W_Q`, `W_K`, `W_V` [head, d_model, d_head] or `W_O`
/// [head, d_head, d_model]) of `heads` heads.
pub fn head(w: &[f32], h: usize, heads: usize) -> &[f32] {
    let n = w.len() / heads;
    &w[h * n..(h + 1) * n]
}

/// Head `h` of a per-head gradient (see [`head`]).
pub fn head_mut(w: &mut [f32], h: usize, heads: usize) -> &mut [f32] {
    let n = w.len() / heads;
    &mut w[h * n..(h + 1) * n]
}

/// Hands out disjoint mutable tensors of one buffer, taken in layout order: how a gradient
/// buffer gives a backward pass several named tensors at once.
struct Cursor<'a> {
    rest: &'a mut [f32],
    at: usize,
}

impl<'a> Cursor<'a> {
    fn new(buf: &'a mut [f32]) -> Cursor<'a> {
        Cursor { rest: buf, at: 0 }
    }

    fn take(&mut self, r: &Range<usize>) -> &'a mut [f32] {
        assert!(r.start >= self.at, "tensor {r:?} taken out of layout order (after {})", self.at);
        let rest = std::mem::take(&mut self.rest);
        let (tensor, rest) = rest[r.start - self.at..].split_at_mut(r.len());
        (self.rest, self.at) = (rest, r.end);
        tensor
    }
}

impl LnIdx {
    /// This LayerNorm's tensors in `buf` (a buffer in the parameters' layout).
    pub fn of<'a>(&self, buf: &'a [f32]) -> Ln<&'a [f32]> {
        Ln { w: &buf[self.w.clone()], b: &buf[self.b.clone()] }
    }

    /// This LayerNorm's tensors in `buf`, mutable (a gradient).
    pub fn of_mut<'a>(&self, buf: &'a mut [f32]) -> Ln<&'a mut [f32]> {
        self.take(&mut Cursor::new(buf))
    }

    fn take<'a>(&self, c: &mut Cursor<'a>) -> Ln<&'a mut [f32]> {
        Ln { w: c.take(&self.w), b: c.take(&self.b) }
    }
}

impl AttnIdx {
    /// This attention layer's tensors in `buf`.
    pub fn of<'a>(&self, buf: &'a [f32]) -> Attn<&'a [f32]> {
        let t = |r: &Range<usize>| &buf[r.clone()];
        Attn {
            w_q: t(&self.w_q),
            w_k: t(&self.w_k),
            w_v: t(&self.w_v),
            w_o: t(&self.w_o),
            b_q: t(&self.b_q),
            b_k: t(&self.b_k),
            b_v: t(&self.b_v),
            b_o: t(&self.b_o),
        }
    }

    fn take<'a>(&self, c: &mut Cursor<'a>) -> Attn<&'a mut [f32]> {
        Attn {
            w_q: c.take(&self.w_q),
            w_k: c.take(&self.w_k),
            w_v: c.take(&self.w_v),
            w_o: c.take(&self.w_o),
            b_q: c.take(&self.b_q),
            b_k: c.take(&self.b_k),
            b_v: c.take(&self.b_v),
            b_o: c.take(&self.b_o),
        }
    }
}

impl MlpIdx {
    /// This MLP's tensors in `buf`.
    pub fn of<'a>(&self, buf: &'a [f32]) -> Mlp<&'a [f32]> {
        let t = |r: &Range<usize>| &buf[r.clone()];
        Mlp { w_in: t(&self.w_in), b_in: t(&self.b_in), w_out: t(&self.w_out), b_out: t(&self.b_out) }
    }

    fn take<'a>(&self, c: &mut Cursor<'a>) -> Mlp<&'a mut [f32]> {
        Mlp { w_in: c.take(&self.w_in), b_in: c.take(&self.b_in), w_out: c.take(&self.w_out), b_out: c.take(&self.b_out) }
    }
}

impl BlockIdx {
    /// This block's tensors in `buf`.
    pub fn of<'a>(&self, buf: &'a [f32]) -> Block<&'a [f32]> {
        Block {
            ln1: self.ln1.as_ref().map(|l| l.of(buf)),
            attn: self.attn.of(buf),
            ln2: self.ln2.as_ref().map(|l| l.of(buf)),
            mlp: self.mlp.as_ref().map(|m| m.of(buf)),
        }
    }

    /// This block's tensors in `buf`, mutable and disjoint (a gradient).
    pub fn of_mut<'a>(&self, buf: &'a mut [f32]) -> Block<&'a mut [f32]> {
        // Layout order: ln1, ln2, attn, mlp (see `ParamLayout::new`).
        let mut c = Cursor::new(buf);
        let ln1 = self.ln1.as_ref().map(|l| l.take(&mut c));
        let ln2 = self.ln2.as_ref().map(|l| l.take(&mut c));
        let attn = self.attn.take(&mut c);
        let mlp = self.mlp.as_ref().map(|m| m.take(&mut c));
        Block { ln1, attn, ln2, mlp }
    }
}

/// Where every tensor lives in the flat buffer.
#[derive(Clone, Debug)]
pub struct ParamLayout {
    /// All tensors in buffer order.
    pub entries: Vec<ParamEntry>,
    /// Total number of parameters.
    pub total: usize,
    /// `embed.W_E` [d_vocab, d_model].
    pub w_e: Range<usize>,
    /// `pos_embed.W_pos` [n_ctx, d_model].
    pub w_pos: Range<usize>,
    /// The blocks.
    pub blocks: Vec<BlockIdx>,
    /// `ln_final`.
    pub ln_final: Option<LnIdx>,
    /// `unembed.W_U` [d_model, d_vocab_out].
    pub w_u: Range<usize>,
    /// `unembed.b_U` `[d_vocab_out]`.
    pub b_u: Range<usize>,
}

struct Builder {
    entries: Vec<ParamEntry>,
    total: usize,
}

impl Builder {
    fn add(&mut self, name: String, shape: &[usize]) -> Range<usize> {
        let n: usize = shape.iter().product();
        let range = self.total..self.total + n;
        self.total += n;
        self.entries.push(ParamEntry { name, shape: shape.to_vec(), range: range.clone() });
        range
    }

    fn ln(&mut self, prefix: &str, d: usize) -> LnIdx {
        LnIdx { w: self.add(format!("{prefix}.w"), &[d]), b: self.add(format!("{prefix}.b"), &[d]) }
    }
}

impl ParamLayout {
    /// Lays out every tensor the config calls for, in TransformerLens's order.
    pub fn new(c: &ModelConfig) -> ParamLayout {
        let (d, h, dh) = (c.d_model, c.n_heads, c.d_head);
        let mut b = Builder { entries: Vec::new(), total: 0 };
        let w_e = b.add("embed.W_E".into(), &[c.d_vocab, d]);
        let w_pos = b.add("pos_embed.W_pos".into(), &[c.n_ctx, d]);
        let blocks = (0..c.n_layers)
            .map(|l| {
                let p = format!("blocks.{l}");
                let ln1 = c.has_ln().then(|| b.ln(&format!("{p}.ln1"), d));
                let ln2 = (c.has_ln() && c.has_mlp()).then(|| b.ln(&format!("{p}.ln2"), d));
                let attn = AttnIdx {
                    w_q: b.add(format!("{p}.attn.W_Q"), &[h, d, dh]),
                    w_k: b.add(format!("{p}.attn.W_K"), &[h, d, dh]),
                    w_v: b.add(format!("{p}.attn.W_V"), &[h, d, dh]),
                    w_o: b.add(format!("{p}.attn.W_O"), &[h, dh, d]),
                    b_q: b.add(format!("{p}.attn.b_Q"), &[h, dh]),
                    b_k: b.add(format!("{p}.attn.b_K"), &[h, dh]),
                    b_v: b.add(format!("{p}.attn.b_V"), &[h, dh]),
                    b_o: b.add(format!("{p}.attn.b_O"), &[d]),
                };
                let mlp = c.has_mlp().then(|| MlpIdx {
                    w_in: b.add(format!("{p}.mlp.W_in"), &[d, c.d_mlp]),
                    b_in: b.add(format!("{p}.mlp.b_in"), &[c.d_mlp]),
                    w_out: b.add(format!("{p}.mlp.W_out"), &[c.d_mlp, d]),
                    b_out: b.add(format!("{p}.mlp.b_out"), &[d]),
                });
                BlockIdx { ln1, attn, ln2, mlp }
            })
            .collect();
        let ln_final = c.has_ln().then(|| b.ln("ln_final", d));
        let w_u = b.add("unembed.W_U".into(), &[d, c.d_vocab_out]);
        let b_u = b.add("unembed.b_U".into(), &[c.d_vocab_out]);
        ParamLayout { entries: b.entries, total: b.total, w_e, w_pos, blocks, ln_final, w_u, b_u }
    }

    /// The embeddings in `buf` (a buffer in this layout).
    pub fn embed_of<'a>(&self, buf: &'a [f32]) -> Embed<&'a [f32]> {
        Embed { w_e: &buf[self.w_e.clone()], w_pos: &buf[self.w_pos.clone()] }
    }

    /// The embeddings in `buf`, mutable (a gradient).
    pub fn embed_of_mut<'a>(&self, buf: &'a mut [f32]) -> Embed<&'a mut [f32]> {
        let mut c = Cursor::new(buf);
        Embed { w_e: c.take(&self.w_e), w_pos: c.take(&self.w_pos) }
    }

    /// The final LayerNorm and unembedding in `buf`.
    pub fn unembed_of<'a>(&self, buf: &'a [f32]) -> Unembed<&'a [f32]> {
        Unembed { ln_final: self.ln_final.as_ref().map(|l| l.of(buf)), w_u: &buf[self.w_u.clone()], b_u: &buf[self.b_u.clone()] }
    }

    /// The final LayerNorm and unembedding in `buf`, mutable (a gradient).
    pub fn unembed_of_mut<'a>(&self, buf: &'a mut [f32]) -> Unembed<&'a mut [f32]> {
        let mut c = Cursor::new(buf);
        let ln_final = self.ln_final.as_ref().map(|l| l.take(&mut c));
        Unembed { ln_final, w_u: c.take(&self.w_u), b_u: c.take(&self.b_u) }
    }

    /// The entry with this TransformerLens name.
    pub fn entry(&self, name: &str) -> Option<&ParamEntry> {
        self.entries.iter().find(|e| e.name == name)
    }
}

/// The weights of one model: its config, its layout and the flat buffer.
#[derive(Clone, Debug)]
pub struct Params {
    /// Architecture.
    pub config: ModelConfig,
    /// Tensor places.
    pub layout: ParamLayout,
    /// All parameters, `layout.total` long.
    pub data: Vec<f32>,
}

impl Params {
    /// All zeros (useful as a gradient buffer).
    pub fn zeros(config: &ModelConfig) -> Params {
        let layout = ParamLayout::new(config);
        Params { config: config.clone(), data: vec![0.0; layout.total], layout }
    }

    /// TransformerLens's default initialisation: every `W_*` ~ N(0, init_std²), biases 0,
    /// LayerNorm weights 1, drawn from ChaCha8 seeded by `config.seed`.
    pub fn init(config: &ModelConfig) -> Params {
        let mut p = Params::zeros(config);
        let mut rng = ChaCha8Rng::seed_from_u64(config.seed);
        let std = config.init_std() as f32;
        for e in &p.layout.entries {
            let slice = &mut p.data[e.range.clone()];
            if e.is_weight_matrix() {
                slice.iter_mut().for_each(|v| *v = std * standard_normal(&mut rng));
            } else if e.name.ends_with(".w") {
                slice.fill(1.0);
            }
        }
        p
    }

    /// The embeddings' weights.
    pub fn embed(&self) -> Embed<&[f32]> {
        self.layout.embed_of(&self.data)
    }

    /// Block `l`'s weights by name.
    pub fn block(&self, l: usize) -> Block<&[f32]> {
        self.layout.blocks[l].of(&self.data)
    }

    /// The final LayerNorm's and unembedding's weights.
    pub fn unembed(&self) -> Unembed<&[f32]> {
        self.layout.unembed_of(&self.data)
    }

    /// The tensor with this TransformerLens name.
    pub fn get(&self, name: &str) -> Option<&[f32]> {
        self.layout.entry(name).map(|e| &self.data[e.range.clone()])
    }

    /// Mutable view of the tensor with this name.
    pub fn get_mut(&mut self, name: &str) -> Option<&mut [f32]> {
        let r = self.layout.entry(name)?.range.clone();
        Some(&mut self.data[r])
    }

    /// Borrowed views of a buffer in this layout (the weights, a gradient, an optimiser moment)
    /// under `prefix` + TransformerLens name, for writing without copies.
    pub fn refs<'a>(&self, prefix: &str, buf: &'a [f32]) -> Vec<crate::io::tensors::TensorRef<'a>> {
        self.layout.entries.iter().map(|e| (format!("{prefix}{}", e.name), e.shape.clone(), &buf[e.range.clone()])).collect()
    }

    /// The `config` metadata entry (the config as JSON).
    pub fn config_metadata(&self) -> (String, String) {
        ("config".into(), serde_json::to_string(&self.config).expect("config serialises"))
    }

    /// All tensors under their TransformerLens names, ready to save.
    pub fn to_tensor_file(&self) -> TensorFile {
        let mut f = TensorFile::default();
        for e in &self.layout.entries {
            let t = Tensor { shape: e.shape.clone(), data: self.data[e.range.clone()].to_vec() };
            f.tensors.insert(e.name.clone(), t);
        }
        f.metadata.extend([self.config_metadata()]);
        f
    }

    /// Builds parameters from named tensors, checking that every tensor the config needs is
    /// present with the right shape and that nothing unknown is left over.
    pub fn from_tensor_file(config: &ModelConfig, file: &TensorFile, what: &str) -> Result<Params, ModelFileError> {
        let what_s = || what.to_string();
        config.validate().map_err(|e| ModelFileError::Config { what: what_s(), source: Box::new(e) })?;
        // Every tensor is checked before the buffer is allocated, so a config that claims sizes
        // the file does not hold costs nothing.
        let layout = ParamLayout::new(config);
        for e in &layout.entries {
            let missing = || ModelFileError::MissingTensor { what: what_s(), tensor: e.name.clone(), shape: e.shape.clone() };
            let t = file.tensors.get(&e.name).ok_or_else(missing)?;
            if t.shape != e.shape || t.data.len() != e.range.len() {
                let (shape, expected) = (t.shape.clone(), e.shape.clone());
                let mismatch = super::error::ShapeMismatch { what: what_s(), tensor: e.name.clone(), shape, expected };
                return Err(ModelFileError::Shape(Box::new(mismatch)));
            }
        }
        let mut p = Params::zeros(config);
        for e in &p.layout.entries {
            p.data[e.range.clone()].copy_from_slice(&file.tensors[&e.name].data);
        }
        let unknown: Vec<String> = file.tensors.keys().filter(|k| p.layout.entry(k).is_none() && !is_ignored_extra(k)).cloned().collect();
        if !unknown.is_empty() {
            return Err(ModelFileError::Unknown { what: what_s(), tensors: unknown });
        }
        Ok(p)
    }
}

/// Tensors a model file may carry beside the weights: TransformerLens's attention buffers and
/// the optimiser state of an arithlens checkpoint.
fn is_ignored_extra(name: &str) -> bool {
    name.ends_with("attn.mask") || name.ends_with("attn.IGNORE") || name.starts_with("optim.")
}

/// A standard normal draw by the Box-Muller transform (identical on every machine).
pub fn standard_normal(rng: &mut ChaCha8Rng) -> f32 {
    let u1: f64 = 1.0 - rng.gen::<f64>();
    let u2: f64 = rng.gen::<f64>();
    ((-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()) as f32
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::config::{ActFn, Norm};

    pub(crate) fn small() -> ModelConfig {
        ModelConfig {
            n_layers: 2,
            n_heads: 3,
            d_model: 48,
            d_head: 16,
            d_mlp: 96,
            d_vocab: 12,
            d_vocab_out: 12,
            n_ctx: 12,
            act_fn: ActFn::Relu,
            normalization_type: Some(Norm::LN),
            attn_only: false,
            eps: 1e-5,
            seed: 1,
            initializer_range: None,
        }
    }

    #[test]
    fn layout_matches_transformer_lens_parameter_count() {
        let l = ParamLayout::new(&small());
        let expected = 12 * 48 + 12 * 48 + 2 * (4 * 48 + 4 * 3 * 48 * 16 + 3 * 3 * 16 + 48 + 48 * 96 * 2 + 96 + 48) + 2 * 48 + 48 * 12 + 12;
        assert_eq!(l.total, expected);
        assert_eq!(l.entry("blocks.1.attn.W_O").unwrap().shape, vec![3, 16, 48]);
    }

    #[test]
    fn init_has_transformer_lens_statistics() {
        let p = Params::init(&small());
        let w = p.get("blocks.0.mlp.W_in").unwrap();
        let mean = w.iter().sum::<f32>() / w.len() as f32;
        let std = (w.iter().map(|v| (v - mean).powi(2)).sum::<f32>() / w.len() as f32).sqrt();
        let want = 0.8 / 48f32.sqrt();
        assert!(mean.abs() < 0.01 && (std - want).abs() < 0.01 * want + 0.003, "{mean} {std}");
        assert!(p.get("blocks.0.ln1.w").unwrap().iter().all(|&v| v == 1.0));
        assert!(p.get("blocks.0.attn.b_Q").unwrap().iter().all(|&v| v == 0.0));
        assert_eq!(Params::init(&small()).data, p.data, "same seed, same weights");
    }

    #[test]
    fn loading_reports_missing_and_misshapen_tensors() {
        let p = Params::init(&small());
        let mut f = p.to_tensor_file();
        f.tensors.get_mut("blocks.0.attn.W_Q").unwrap().shape = vec![3, 16, 48];
        let err = Params::from_tensor_file(&small(), &f, "m").unwrap_err().to_string();
        assert!(err.contains("'blocks.0.attn.W_Q' has shape [3, 16, 48] but the config needs [3, 48, 16]"), "{err}");
        f.tensors.remove("unembed.b_U");
        f.tensors.get_mut("blocks.0.attn.W_Q").unwrap().shape = vec![3, 48, 16];
        let err = Params::from_tensor_file(&small(), &f, "m").unwrap_err().to_string();
        assert!(err.contains("'unembed.b_U' is missing"), "{err}");
    }
}
