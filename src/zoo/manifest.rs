//! The zoo manifest (TOML): which models to train, with which overrides, which stages to run
//! with which options, how to submit them to Slurm, and what the papers report for each model.
//!
//! ```toml
//! [zoo]
//! name = "mini"                      # run folders go to runs/zoo-mini/NAME unless --root
//! stages = ["train", "eval", "analyze", "report"]
//!
//! [eval]                             # arithlens eval's options (defaults: eval's)
//! questions = 1000000
//!
//! [analyze]                          # arithlens analyze's options (defaults: analyze's)
//! questions = 1000
//!
//! [slurm]                            # sbatch options for --engine slurm
//! partition = "cpu"
//! cpus_per_task = 4
//! time = "04:00:00"
//! extra = ["#SBATCH --mem=8G"]
//!
//! [[model]]
//! preset = "add_d5_l2_h3_t15K_s372001"   # any preset; also the run folder's name unless `name`
//! set = ["steps=3000"]                   # overrides, as train --set
//! paper = { nines = { add = 6 }, loss = 1.6e-8, note = "..." }
//! ```

use super::Stage;
use crate::task::Op;
use crate::train::TrainConfig;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// The manifest as written (before presets are resolved).
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ManifestFile {
    /// The zoo's name and defaults.
    pub zoo: ZooSection,
    /// Options of the eval stage.
    #[serde(default)]
    pub eval: EvalSection,
    /// Options of the analyze stage.
    #[serde(default)]
    pub analyze: AnalyzeSection,
    /// sbatch options.
    #[serde(default)]
    pub slurm: SlurmSection,
    /// The models, in order.
    #[serde(default, rename = "model")]
    pub models: Vec<ModelEntry>,
}

/// `[zoo]`: the name and the stages every model runs unless it says otherwise.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ZooSection {
    /// The zoo's name (letters, digits, `_`, `-`, `.`): names its default root `runs/zoo-NAME`
    /// and its Slurm jobs.
    pub name: String,
    /// Stages to run, in any order (default: all four).
    pub stages: Option<Vec<Stage>>,
}

/// `[eval]`: `arithlens eval`'s options; unset ones take eval's defaults.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EvalSection {
    /// Random questions per operation.
    pub questions: Option<u64>,
    /// Seed of the question sets.
    pub seed: Option<u64>,
    /// Every question (n <= 3); default: exactly when the model has at most 3 digits, as `run`.
    pub exhaustive: Option<bool>,
    /// Stratified questions per complexity class.
    pub per_class: Option<usize>,
}

/// `[analyze]`: `arithlens analyze`'s options; unset ones take analyze's defaults.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AnalyzeSection {
    /// Questions in the ablation set.
    pub questions: Option<usize>,
    /// Seed of the question sets.
    pub seed: Option<u64>,
    /// Patching pairs per candidate sub-task.
    pub pairs: Option<usize>,
    /// Same-column-sum questions per checked one.
    pub siblings: Option<usize>,
}

/// `[slurm]`: options of every sbatch script.
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct SlurmSection {
    /// `--partition`.
    pub partition: Option<String>,
    /// `--account`.
    pub account: Option<String>,
    /// `--time` of every job (e.g. "04:00:00").
    pub time: Option<String>,
    /// `--time` per stage, over `time` (e.g. `{ train = "12:00:00" }`).
    #[serde(default)]
    pub stage_time: BTreeMap<Stage, String>,
    /// `--cpus-per-task` (default 1): also each job's `--threads`.
    pub cpus_per_task: Option<usize>,
    /// Further lines, each starting `#SBATCH`.
    #[serde(default)]
    pub extra: Vec<String>,
}

/// `[[model]]`: one model of the zoo.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelEntry {
    /// The preset (`tiny`, `add_d6_l2_h3_t15K_s372001`, ...).
    pub preset: String,
    /// The run folder's name under the root (default: the preset).
    pub name: Option<String>,
    /// Config overrides, as `train --set` (`"steps=3000"`).
    #[serde(default)]
    pub set: Vec<String>,
    /// Stages for this model (default: the zoo's).
    pub stages: Option<Vec<Stage>>,
    /// What the papers report for this model.
    pub paper: Option<PaperFigures>,
}

/// The figures a paper reports for a model, set beside ours in the table.
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct PaperFigures {
    /// Nines per operation (`add`, `sub`) on a million random questions.
    #[serde(default)]
    pub nines: BTreeMap<String, u32>,
    /// The final training loss reported.
    pub loss: Option<f64>,
    /// Where the figures come from, or why they are uncertain.
    pub note: Option<String>,
    /// Set when a figure could not be confirmed in the paper or its code.
    #[serde(default)]
    pub unverified: bool,
}

/// A model of the zoo, resolved: its config is the preset with the overrides.
#[derive(Clone, Debug)]
pub struct ZooModel {
    /// Run folder name under the root.
    pub name: String,
    /// The preset.
    pub preset: String,
    /// Overrides passed to train (`--set`), the manifest's plus the insertion source's path.
    pub overrides: Vec<String>,
    /// The config train will use.
    pub config: TrainConfig,
    /// Stages to run.
    pub stages: Vec<Stage>,
    /// The papers' figures.
    pub paper: Option<PaperFigures>,
    /// For an inserted model: the index of the zoo model it is initialised from.
    pub insert_source: Option<usize>,
}

/// A manifest, resolved against a root folder.
#[derive(Clone, Debug)]
pub struct Zoo {
    /// The manifest's path (absolute).
    pub path: PathBuf,
    /// The zoo's name.
    pub name: String,
    /// The folder holding one run folder per model (absolute).
    pub root: PathBuf,
    /// The models in manifest order.
    pub models: Vec<ZooModel>,
    /// eval's options.
    pub eval: EvalSection,
    /// analyze's options.
    pub analyze: AnalyzeSection,
    /// sbatch options.
    pub slurm: SlurmSection,
}

/// The operation's key in `paper.nines` and the table: `add` or `sub`.
pub fn op_key(op: Op) -> &'static str {
    match op {
        Op::Add => "add",
        Op::Sub => "sub",
    }
}

impl Zoo {
    /// Reads and resolves the manifest at `path`; run folders go under `root` (default
    /// `runs/zoo-NAME`, relative to the current folder). Errors name the manifest, the model and
    /// the field at fault.
    pub fn load(path: &Path, root: Option<&Path>) -> Result<Zoo, String> {
        let text = std::fs::read_to_string(path).map_err(|e| format!("cannot read the zoo manifest {}: {e}", path.display()))?;
        Zoo::parse(&text, path, root)
    }

    /// [`Zoo::load`] of manifest text said to come from `path`.
    pub fn parse(text: &str, path: &Path, root: Option<&Path>) -> Result<Zoo, String> {
        let file: ManifestFile = toml::from_str(text).map_err(|e| format!("{}: {}", path.display(), e.to_string().trim_end()))?;
        let at = |what: String| format!("{}: {what}", path.display());
        crate::train::config::check_name(&file.zoo.name).map_err(|e| at(format!("[zoo] name: {e}")))?;
        if file.models.is_empty() {
            return Err(at("no models: add at least one [[model]] with a preset".into()));
        }
        let root = absolute(root.map(Path::to_path_buf).unwrap_or_else(|| PathBuf::from("runs").join(format!("zoo-{}", file.zoo.name))))?;
        let default_stages = file.zoo.stages.clone().unwrap_or_else(|| Stage::ALL.to_vec());
        let mut models: Vec<ZooModel> = Vec::new();
        for (i, entry) in file.models.iter().enumerate() {
            let m = resolve_model(entry, &default_stages).map_err(|e| at(format!("model #{} ({}): {e}", i + 1, entry.preset)))?;
            if let Some(j) = models.iter().position(|o| o.name == m.name) {
                return Err(at(format!(
                    "models #{} and #{} are both named '{}': give one a `name` (each model needs its own run folder)",
                    j + 1,
                    i + 1,
                    m.name
                )));
            }
            models.push(m);
        }
        link_insertions(&mut models, &root).map_err(at)?;
        check_slurm(&file.slurm).map_err(at)?;
        let path = absolute(path.to_path_buf())?;
        Ok(Zoo { path, name: file.zoo.name, root, models, eval: file.eval, analyze: file.analyze, slurm: file.slurm })
    }

    /// The run folder of model `i`.
    pub fn run_dir(&self, i: usize) -> PathBuf {
        self.root.join(&self.models[i].name)
    }

    /// The index of the model named `name`.
    pub fn model_index(&self, name: &str) -> Result<usize, String> {
        self.models.iter().position(|m| m.name == name).ok_or_else(|| {
            let names: Vec<&str> = self.models.iter().map(|m| m.name.as_str()).collect();
            format!("{} has no model named '{name}': it has {}", self.path.display(), names.join(", "))
        })
    }
}

/// `p` made absolute against the current folder (job scripts run elsewhere).
fn absolute(p: PathBuf) -> Result<PathBuf, String> {
    std::path::absolute(&p).map_err(|e| format!("cannot make {} absolute: {e}", p.display()))
}

/// One `[[model]]` resolved: its config, name and stages.
fn resolve_model(entry: &ModelEntry, default_stages: &[Stage]) -> Result<ZooModel, String> {
    let config = TrainConfig::preset(&entry.preset)
        .map_err(|e| format!("preset: {e}"))?
        .with_overrides(&entry.set)
        .map_err(|e| format!("set: {e}"))?;
    let name = entry.name.clone().unwrap_or_else(|| entry.preset.clone());
    crate::train::config::check_name(&name).map_err(|e| format!("name: {e}"))?;
    let stages = entry.stages.clone().unwrap_or_else(|| default_stages.to_vec());
    if stages.is_empty() {
        return Err("stages: empty; list at least one of train, eval, analyze, report".into());
    }
    if let Some(p) = &entry.paper {
        let ops: Vec<&str> = config.task.ops().into_iter().map(op_key).collect();
        if let Some(bad) = p.nines.keys().find(|k| !ops.contains(&k.as_str())) {
            return Err(format!("paper.nines: '{bad}' is not an operation of this model (it has {})", ops.join(", ")));
        }
        if let Some((op, n)) = p.nines.iter().find(|(_, &n)| n > 6) {
            return Err(format!("paper.nines.{op} = {n}: a million questions measure at most 6 nines"));
        }
    }
    let mut stages_sorted: Vec<Stage> = Stage::ALL.iter().copied().filter(|s| stages.contains(s)).collect();
    stages_sorted.dedup();
    Ok(ZooModel {
        name,
        preset: entry.preset.clone(),
        overrides: entry.set.clone(),
        config,
        stages: stages_sorted,
        paper: entry.paper.clone(),
        insert_source: None,
    })
}

/// An inserted model whose source (by run folder name) is a model of the zoo is initialised
/// from that model's run folder under `root`, and its training waits for the source's.
fn link_insertions(models: &mut [ZooModel], root: &Path) -> Result<(), String> {
    for i in 0..models.len() {
        let Some(ins) = &models[i].config.insert else { continue };
        // The preset's source (runs/add_dN_l2_h3_t15K_sSEED), or `set = ["insert.from=NAME"]`,
        // names a model of the zoo by its run folder name.
        let source = ins.from.to_str().unwrap_or_default();
        let source =
            if ins.from.components().count() == 1 { source } else { ins.from.file_name().and_then(|n| n.to_str()).unwrap_or_default() };
        let explicit = models[i].overrides.iter().any(|o| o.trim_start().starts_with("insert.from"));
        let Some(j) = models.iter().position(|m| m.name == source) else { continue };
        if explicit && ins.from.components().count() != 1 {
            continue; // a path of the user's own
        }
        let source = source.to_string();
        if !models[j].stages.contains(&Stage::Train) {
            return Err(format!("model '{}' is inserted from '{source}', which does not list the train stage", models[i].name));
        }
        let from = root.join(&source);
        let set = format!("insert.from={}", from.display());
        let m = &mut models[i];
        m.overrides.retain(|o| !o.trim_start().starts_with("insert.from"));
        m.overrides.push(set);
        // Rebuilt from the preset with every override, so fields derived from others stay as set.
        m.config =
            TrainConfig::preset(&m.preset).and_then(|c| c.with_overrides(&m.overrides)).map_err(|e| format!("model '{}': {e}", m.name))?;
        m.insert_source = Some(j);
    }
    // A model inserted from itself (or a cycle) cannot be trained.
    for (i, m) in models.iter().enumerate() {
        if let Some(j) = m.insert_source {
            if j == i || models[j].insert_source.is_some() {
                return Err(format!(
                    "model '{}' is inserted from '{}', itself an inserted model: chains are not supported",
                    m.name, models[j].name
                ));
            }
        }
    }
    Ok(())
}

/// Checks the `[slurm]` section: extra lines are `#SBATCH` lines, numbers are positive.
fn check_slurm(s: &SlurmSection) -> Result<(), String> {
    if let Some(bad) = s.extra.iter().find(|l| !l.starts_with("#SBATCH ") || l.contains('\n')) {
        return Err(format!("[slurm] extra: '{bad}' is not one '#SBATCH --option' line"));
    }
    if s.cpus_per_task == Some(0) {
        return Err("[slurm] cpus_per_task = 0: use at least 1".into());
    }
    let bad_word = |v: &Option<String>| v.as_deref().is_some_and(|v| v.is_empty() || v.chars().any(|c| c.is_whitespace() || c == '\''));
    for (field, v) in [("partition", &s.partition), ("account", &s.account), ("time", &s.time)] {
        if bad_word(v) {
            return Err(format!("[slurm] {field} = '{}': one word without spaces or quotes", v.as_deref().unwrap_or_default()));
        }
    }
    for (stage, t) in &s.stage_time {
        if bad_word(&Some(t.clone())) {
            return Err(format!("[slurm] stage_time.{} = '{t}': one word without spaces or quotes", stage.name()));
        }
    }
    Ok(())
}
