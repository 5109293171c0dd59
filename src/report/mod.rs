//! The report: figures as standalone SVG, and the HTML page that shows a run.
//!
//! `arithlens report RUN_DIR` reads training.json, timing.json, eval.json, analysis.json (each optional) and
//! the model, each as its typed artifact ([`TrainingLog`], [`EvalReport`], [`Analysis`]), builds a [`page::Page`] of eight sections (run, training, accuracy, positions,
//! attention, node map, PCA, algorithm), and writes RUN_DIR/report.html plus every figure as
//! RUN_DIR/figures/NAME.svg.
//!
//! Nothing is shown as current that does not belong to the folder's model: a file whose
//! recorded model hash differs from model.safetensors's SHA-256 (or that records none, or does
//! not parse as what arithlens writes) is not drawn; its sections show a note saying which file,
//! why, and what to run instead. The page records the model hash it was made for in a
//! `<meta name="arithlens-provenance">` entry.

pub(crate) mod accuracy;
pub(crate) mod algorithm;
pub(crate) mod attention;
pub(crate) mod attribution;
pub(crate) mod circuit;
pub(crate) mod families;
pub(crate) mod html;
pub(crate) mod node_map;
pub mod page;
pub(crate) mod pca_view;
pub(crate) mod positions;
pub(crate) mod run_info;
pub(crate) mod svg;
pub(crate) mod training;

use crate::analysis::Analysis;
use crate::eval::EvalReport;
use crate::io::IoError;
use crate::run_folder::files;
use crate::task_model::TaskModel;
use crate::train::log::TrainingLog;
use page::{Block, Page, Section};
use std::path::{Path, PathBuf};

/// Everything the report shows, as found in a run folder.
pub struct RunData {
    /// The run folder.
    pub dir: PathBuf,
    /// training.json, if present.
    pub log: Option<TrainingLog>,
    /// timing.json (or an older training.json's timing), if present.
    pub timing: Option<crate::train::timing::Timing>,
    /// eval.json, if present.
    pub eval: Option<EvalReport>,
    /// The trained model, if present.
    pub model: Option<TaskModel>,
    /// analysis.json, if present.
    pub analysis: Option<Analysis>,
    /// Hex SHA-256 of model.safetensors, if present.
    pub model_sha256: Option<String>,
    /// Why training.json, eval.json or analysis.json is present but not shown (it does not
    /// belong to the model, or holds nothing usable), by file name: shown in their sections.
    pub withheld: Vec<(&'static str, String)>,
}

/// What to run to replace each derived file with one of the folder's model.
fn remedy(file: &str) -> &'static str {
    match file {
        files::EVAL => "run `arithlens eval RUN_DIR` (or `arithlens run`) to evaluate this model",
        files::ANALYSIS => "run `arithlens analyze RUN_DIR` (or `arithlens run`) to analyse this model",
        _ => "finish or redo the training that writes the model (`arithlens train --resume`, `--force`, or `arithlens run`)",
    }
}

/// The note shown instead of a withheld file's figures.
fn withheld_note(file: &str, kind: &str, why: &crate::provenance::Stale) -> String {
    let what = match why {
        crate::provenance::Stale::Unusable(e) => format!("holds no usable {kind} ({e})"),
        other => other.reason(),
    };
    format!("{file} {what}. Its figures are not shown: {}.", remedy(file))
}

/// A derived file of `dir` checked against the model hash `sha` (`None`: no model to check
/// against, so only its contents are checked); a file not shown leaves its note in `withheld`.
fn checked<T: crate::provenance::Derived>(
    dir: &Path,
    file: &'static str,
    kind: &str,
    sha: Option<&str>,
    withheld: &mut Vec<(&'static str, String)>,
) -> Option<T> {
    let path = dir.join(file);
    let found = match sha {
        Some(sha) => crate::provenance::read_current::<T>(&path, sha, None),
        None => crate::provenance::read_parsed::<T>(&path),
    };
    match found {
        Ok(v) => Some(v),
        Err(crate::provenance::Stale::Missing) => None,
        Err(why) => {
            withheld.push((file, withheld_note(file, kind, &why)));
            None
        }
    }
}

/// training.json, if it belongs to the model hashing to `sha` (the hash it records when its
/// run finished); otherwise its note goes to `withheld`.
fn checked_log(dir: &Path, sha: Option<&str>, withheld: &mut Vec<(&'static str, String)>) -> Option<TrainingLog> {
    use crate::provenance::{short, Stale};
    const TRAINING: &str = crate::run_folder::files::TRAINING;
    let why = match (crate::provenance::read_parsed::<TrainingLog>(&dir.join(TRAINING)), sha) {
        (Err(Stale::Missing), _) => return None,
        (Ok(log), None) => return Some(log),
        (Ok(log), Some(sha)) => match log.model_sha256.as_deref() {
            Some(s) if s == sha => return Some(log),
            Some(s) => Stale::Foreign(format!(
                "it records the model of another run (SHA-256 {}..., this folder's model is {}...)",
                short(s),
                short(sha)
            )),
            None => Stale::Foreign(
                "it records no finished model (a training in progress or interrupted, or written by an older arithlens), \
                 so it cannot be shown to belong to this model"
                    .into(),
            ),
        },
        (Err(e), _) => e,
    };
    withheld.push((TRAINING, withheld_note(TRAINING, "training record", &why)));
    None
}

impl RunData {
    /// Loads what `dir` holds; missing files are `None`, and so are files that do not parse or
    /// do not belong to the model (their notes go to `withheld`); an unreadable model is an error.
    pub fn load(dir: &Path) -> Result<RunData, ReportError> {
        Self::load_with(dir, Default::default())
    }

    /// [`RunData::load`] with the model loaded per `opts`.
    pub fn load_with(dir: &Path, opts: crate::model::file::LoadOptions) -> Result<RunData, ReportError> {
        if !dir.is_dir() {
            return Err(ReportError::NotARunFolder { dir: dir.to_path_buf() });
        }
        let model_file = crate::task_model::model_path(dir);
        let model = if model_file.exists() { Some(TaskModel::load_with(dir, opts)?) } else { None };
        let sha = model.as_ref().and_then(|m| m.sha256.clone());
        let mut withheld = Vec::new();
        let log = checked_log(dir, sha.as_deref(), &mut withheld);
        let eval = checked::<EvalReport>(dir, files::EVAL, "evaluation", sha.as_deref(), &mut withheld);
        let analysis = checked::<Analysis>(dir, files::ANALYSIS, "analysis", sha.as_deref(), &mut withheld);
        // timing.json goes with training.json: shown only beside a training log that belongs here.
        let timing = log.as_ref().and_then(|_| crate::train::timing::Timing::load(dir));
        Ok(RunData { dir: dir.to_path_buf(), log, timing, eval, model, analysis, model_sha256: sha, withheld })
    }

    /// The note for a file that is not shown, if it is withheld.
    pub fn withheld(&self, file: &str) -> Option<&str> {
        self.withheld.iter().find(|(f, _)| *f == file).map(|(_, n)| n.as_str())
    }

    /// The note shown where analysis.json's content would be.
    fn analysis_note(&self) -> String {
        self.withheld(files::ANALYSIS).unwrap_or(ANALYZE_NOTE).to_string()
    }
}

/// The note shown in place of a section that needs analysis.json.
pub const ANALYZE_NOTE: &str =
    "No analysis.json in this run folder: run `arithlens analyze RUN_DIR` (or `arithlens run`) to fill this section.";

/// A section built from analysis.json by `f`, or `missing` (the note to run the analysis).
pub fn analysis_section(
    id: &str,
    title: &str,
    (analysis, missing): (Option<&Analysis>, &str),
    f: impl Fn(&Analysis) -> Vec<Block>,
) -> Section {
    let mut s = Section::new(id, title);
    match analysis {
        None => s.blocks.push(Block::Note(missing.into())),
        Some(a) => {
            let blocks = f(a);
            if blocks.is_empty() {
                s.blocks.push(Block::Note("analysis.json holds no data for this section (an older or partial analysis?).".into()));
            }
            s.blocks.extend(blocks);
        }
    }
    s
}

fn attention_section(d: &RunData) -> Section {
    let mut s = Section::new("attention", "Attention");
    match &d.model {
        Some(m) => s.blocks.extend(attention::blocks(m)),
        None => attention::missing_model(&mut s),
    }
    match &d.analysis {
        Some(a) => s.blocks.extend(attention::analysis_blocks(a)),
        None => s.blocks.push(Block::Note(d.analysis_note())),
    }
    s
}

fn pca_section(d: &RunData) -> Section {
    analysis_section("pca", "PCA of useful heads", (d.analysis.as_ref(), &d.analysis_note()), |a| pca_view::blocks(a, d.model.as_ref()))
}

/// The page for a run.
pub fn build_page(d: &RunData) -> Page {
    let note = d.analysis_note();
    let a = (d.analysis.as_ref(), note.as_str());
    let withheld = |mut s: Section, file: &str| {
        if let Some(n) = d.withheld(file) {
            s.blocks = vec![Block::Note(n.into())];
        }
        s
    };
    let mut training = withheld(training::section(d.log.as_ref()), crate::run_folder::files::TRAINING);
    training.blocks.extend(d.analysis.as_ref().and_then(|a| a.dynamics.as_ref()).map(training::dynamics));
    let name = d.log.as_ref().map(|l| l.config.name.clone()).or_else(|| d.model.as_ref().map(|m| m.name.clone())).unwrap_or_default();
    let notes: Vec<String> = d.withheld.iter().map(|(_, n)| n.clone()).collect();
    let sections = vec![
        run_info::section(d.log.as_ref(), d.timing.as_ref(), d.eval.as_ref(), &notes),
        training,
        withheld(accuracy::section(d.eval.as_ref()), files::EVAL),
        analysis_section("positions", "Where computation happens", a, positions::blocks),
        attention_section(d),
        analysis_section("nodes", "The node map", a, |a| [node_map::blocks(a), attribution::blocks(a), circuit::blocks(a)].concat()),
        pca_section(d),
        analysis_section("algorithm", "The algorithm and the symbolic model", a, algorithm::blocks),
    ];
    let model = d.model_sha256.as_ref().map_or(String::new(), |s| format!(" Model SHA-256 {s}."));
    Page {
        title: format!("arithlens report: {name}"),
        subtitle: format!("Run folder {}.{model} Figures are also saved as SVG under {}/.", d.dir.display(), files::FIGURES),
        sections,
        meta: d.model_sha256.iter().map(|sha| ("arithlens-provenance".to_string(), provenance(d, sha))).collect(),
    }
}

/// report.html's provenance: the model hash, and which files it shows (with their options).
fn provenance(d: &RunData, sha: &str) -> String {
    let options = serde_json::json!({
        "training.json": d.log.is_some(),
        "eval.json": d.eval.as_ref().and_then(|e| e.provenance.as_ref()).map(|p| &p.options),
        "analysis.json": d.analysis.as_ref().and_then(|a| a.provenance.as_ref()).map(|p| &p.options),
    });
    serde_json::to_string(&crate::provenance::Provenance::new(sha, &options)).unwrap_or_default()
}

/// Why a report could not be written: the folder or file at fault.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    /// The path is not a folder.
    #[error("{} is not a run folder", dir.display())]
    NotARunFolder {
        /// The path given.
        dir: PathBuf,
    },
    /// The folder's model cannot be loaded.
    #[error(transparent)]
    Model(#[from] crate::task_model::ModelError),
    /// The page or a figure could not be written.
    #[error(transparent)]
    Io(#[from] IoError),
}

impl From<ReportError> for String {
    fn from(e: ReportError) -> String {
        e.to_string()
    }
}

/// Writes RUN_DIR/report.html and RUN_DIR/figures/*.svg (each atomically); returns the page's path.
pub fn write_report(dir: &Path) -> Result<PathBuf, ReportError> {
    write_report_with(dir, Default::default())
}

/// [`write_report`] with the model loaded per `opts`.
pub fn write_report_with(dir: &Path, opts: crate::model::file::LoadOptions) -> Result<PathBuf, ReportError> {
    let data = RunData::load_with(dir, opts)?;
    let page = build_page(&data);
    let fig_dir = dir.join(files::FIGURES);
    let mut written = std::collections::HashSet::new();
    for f in page.sections.iter().flat_map(|s| s.figures()) {
        let path = fig_dir.join(format!("{}.svg", f.name));
        crate::io::atomic::write_atomic(&path, f.svg.as_bytes()).map_err(|source| IoError::Write { path: path.clone(), source })?;
        written.insert(path);
    }
    remove_stale_figures(&fig_dir, &written);
    let path = dir.join(files::REPORT);
    crate::io::atomic::write_atomic(&path, html::render(&page).as_bytes())
        .map_err(|source| IoError::Write { path: path.clone(), source })?;
    Ok(path)
}

/// Removes the `.svg` files in `fig_dir` that this report did not write (figures of an earlier
/// report of the run, e.g. of nodes the new analysis no longer finds), so the folder matches the
/// page. Other files are left alone; a file that cannot be removed is left too.
fn remove_stale_figures(fig_dir: &Path, written: &std::collections::HashSet<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(fig_dir) else { return };
    for path in entries.flatten().map(|e| e.path()) {
        if path.extension().is_some_and(|x| x == "svg") && !written.contains(&path) {
            let _ = std::fs::remove_file(&path);
        }
    }
}
