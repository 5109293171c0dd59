//! The largest sizes, counts and thread numbers arithlens accepts, in one place, with the memory
//! they would need. Every size a user (or a model file) gives is checked against these before
//! anything is allocated, so a typo such as `--set d_model=18446744073709551615` is an error
//! naming the field and the bound, never a panic, an allocation abort or a hang.
//!
//! The bounds are far above the papers' models (paper 1: 1 layer, d_model 510, 3 heads, batch
//! 64, about 3 million parameters and well under 1 GiB to train) and below what a CPU machine can
//! hold: what a run would need is estimated (parameters, gradients and AdamW's two moments, plus
//! the activations of one batch) and refused above [`MAX_MEMORY_BYTES`].

/// Most memory (bytes) a run, a model or a cache may plan for: 64 GiB, the memory of a large
/// workstation; arithlens's models need a thousandth of it.
pub const MAX_MEMORY_BYTES: u64 = 64 << 30;
/// Most transformer blocks (the papers use 1 to 3).
pub const MAX_LAYERS: usize = 1024;
/// Most attention heads per block (the papers use 3 or 4).
pub const MAX_HEADS: usize = 1024;
/// Widest residual stream, head, or MLP (the papers: 510, 170 and 2040).
pub const MAX_WIDTH: usize = 1 << 16;
/// Longest context (a 20-digit question with its answer is 64 tokens).
pub const MAX_CTX: usize = 4096;
/// Largest vocabulary (the formats use 12 and 15 tokens).
pub const MAX_VOCAB: usize = 1 << 16;
/// Most questions per training step (the papers use 64).
pub const MAX_BATCH: usize = 1 << 20;
/// Most training steps: 10^12, far beyond any run (the papers train 15,000 to 40,000).
pub const MAX_STEPS: u64 = 1_000_000_000_000;
/// Most questions `analyze --questions` takes: 100 times the default 1000; every node is
/// ablated at every position on each, so more would take days.
pub const MAX_ANALYZE_QUESTIONS: usize = 100_000;
/// Most question pairs per sub-task (`analyze --pairs`) and questions per symbolic-check
/// question (`--siblings`): 1000 times the defaults' order; each is a forward pass per node.
pub const MAX_ANALYZE_PAIRS: usize = 100_000;
/// Most stratified questions per class (`eval --per-class`) and questions a benchmark times:
/// 10^7, a thousand times the default 10,000; all of them are held in memory at once.
pub const MAX_HELD_QUESTIONS: usize = 10_000_000;
/// Most highest-loss questions listed (`eval --top`).
pub const MAX_TOP: usize = 100_000;
/// Most threads: 1024; more only adds scheduling (a thread per core is fastest).
pub const MAX_THREADS: usize = 1024;

/// `bytes` as "X.Y GiB".
pub fn gib(bytes: u64) -> String {
    format!("{:.1} GiB", bytes as f64 / (1u64 << 30) as f64)
}

/// A size or count outside what arithlens accepts: the field or flag, the value, the bound and
/// why the bound is there.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum LimitError {
    /// A count that must be at least 1 is 0.
    #[error("{name} is 0: it must be at least 1 (and at most {max}; {why})")]
    Zero {
        /// The field or flag.
        name: String,
        /// The largest value allowed.
        max: u64,
        /// What the field is for.
        why: String,
    },
    /// A value above its bound.
    #[error("{name} = {value} is too large: at most {max} is allowed ({why})")]
    TooLarge {
        /// The field or flag.
        name: String,
        /// The value given.
        value: u64,
        /// The largest value allowed.
        max: u64,
        /// What the field is for.
        why: String,
    },
    /// Sizes whose memory would exceed [`MAX_MEMORY_BYTES`] (`bytes` `None`: more than u64 holds).
    #[error("{}", memory_message(what, *bytes, purpose))]
    Memory {
        /// The sizes that need it, e.g. "d_model=100000, batch_size=64".
        what: String,
        /// The bytes they would need.
        bytes: Option<u64>,
        /// What the memory would hold.
        purpose: String,
    },
}

/// An option (a command-line flag, or the keyword argument of the same name) whose value is
/// out of its range: the flag, the value, and what is wrong with it and what would be right.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{flag} {value} {problem}")]
pub struct OptionError {
    /// The flag, e.g. `--questions`.
    pub flag: &'static str,
    /// The value given.
    pub value: usize,
    /// What is wrong with it and what would be right, e.g. "is too many: at most 10000".
    pub problem: String,
}

impl From<OptionError> for String {
    fn from(e: OptionError) -> String {
        e.to_string()
    }
}

impl From<LimitError> for String {
    fn from(e: LimitError) -> String {
        e.to_string()
    }
}

fn memory_message(what: &str, bytes: Option<u64>, purpose: &str) -> String {
    match bytes {
        Some(b) => format!(
            "{what} would need ~{} for {purpose}, more than the {} arithlens allows: use smaller sizes",
            gib(b),
            gib(MAX_MEMORY_BYTES)
        ),
        None => format!(
            "{what} would need more memory than any machine has for {purpose} (the {} arithlens allows): use smaller sizes",
            gib(MAX_MEMORY_BYTES)
        ),
    }
}

/// Error unless `1 <= value <= max`; `why` says what the field is for.
pub fn check_range(name: &str, value: u64, max: u64, why: &str) -> Result<(), LimitError> {
    if value == 0 {
        return Err(LimitError::Zero { name: name.into(), max, why: why.into() });
    }
    if value > max {
        return Err(LimitError::TooLarge { name: name.into(), value, max, why: why.into() });
    }
    Ok(())
}

/// Error unless `threads` is in `1..=MAX_THREADS`.
pub fn check_threads(flag: &str, threads: usize) -> Result<(), LimitError> {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    check_range(flag, threads as u64, MAX_THREADS as u64, &format!("this machine has {cores} cores; one thread per core is fastest"))
}

/// Error if `bytes` (None: more than u64 holds) exceeds [`MAX_MEMORY_BYTES`]; `what` names the
/// sizes that need it, e.g. "d_model=100000, batch_size=64".
pub fn check_memory(what: &str, bytes: Option<u64>, purpose: &str) -> Result<(), LimitError> {
    match bytes {
        Some(b) if b <= MAX_MEMORY_BYTES => Ok(()),
        _ => Err(LimitError::Memory { what: what.into(), bytes, purpose: purpose.into() }),
    }
}

/// Product of `factors`, None on overflow.
pub fn product(factors: &[u64]) -> Option<u64> {
    factors.iter().try_fold(1u64, |acc, &f| acc.checked_mul(f))
}

/// Sum of `terms`, None on overflow.
pub fn sum(terms: &[Option<u64>]) -> Option<u64> {
    terms.iter().try_fold(0u64, |acc, t| acc.checked_add((*t)?))
}
