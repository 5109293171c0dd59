//! The report: figures as standalone SVG, and the HTML page that shows a run.
//!
//! `arithlens report RUN_DIR` reads training.json, eval.json, analysis.json (each optional) and
//! the model, builds a [`page::Page`] of eight sections (run, training, accuracy, positions,
//! attention, node map, PCA, algorithm), and writes RUN_DIR/report.html plus every figure as
//! RUN_DIR/figures/NAME.svg.

pub mod accuracy;
pub mod analysis_map;
pub mod attention;
pub mod html;
pub mod page;
pub mod pca_view;
pub mod run_info;
pub mod svg;
pub mod training;

use crate::eval::EvalReport;
use crate::task_model::TaskModel;
use crate::train::log::TrainingLog;
use page::{Block, Page, Section};
use std::path::{Path, PathBuf};

/// File names the report reads and writes inside a run folder.
pub mod files {
    /// The evaluation (`arithlens eval`).
    pub const EVAL: &str = "eval.json";
    /// The analysis (`arithlens analyze`).
    pub const ANALYSIS: &str = "analysis.json";
    /// The page.
    pub const REPORT: &str = "report.html";
    /// Folder of the standalone figures.
    pub const FIGURES: &str = "figures";
}

/// Everything the report shows, as found in a run folder.
pub struct RunData {
    /// The run folder.
    pub dir: PathBuf,
    /// training.json, if present.
    pub log: Option<TrainingLog>,
    /// eval.json, if present.
    pub eval: Option<EvalReport>,
    /// The trained model, if present.
    pub model: Option<TaskModel>,
    /// analysis.json as untyped JSON, if present (see [`analysis_map`]).
    pub analysis: Option<serde_json::Value>,
}

fn read_json<T: serde::de::DeserializeOwned>(path: &Path) -> Result<Option<T>, String> {
    if !path.exists() {
        return Ok(None);
    }
    let text = std::fs::read_to_string(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    serde_json::from_str(&text).map(Some).map_err(|e| format!("{} is not valid: {e}", path.display()))
}

impl RunData {
    /// Loads what `dir` holds; unreadable files are errors, missing ones are `None`.
    pub fn load(dir: &Path) -> Result<RunData, String> {
        Self::load_with(dir, Default::default())
    }

    /// [`RunData::load`] with the model loaded per `opts`.
    pub fn load_with(dir: &Path, opts: crate::model::file::LoadOptions) -> Result<RunData, String> {
        if !dir.is_dir() {
            return Err(format!("{} is not a run folder", dir.display()));
        }
        let model_file = crate::task_model::model_path(dir);
        Ok(RunData {
            dir: dir.to_path_buf(),
            log: read_json(&dir.join(crate::train::trainer::files::TRAINING))?,
            eval: read_json(&dir.join(files::EVAL))?,
            model: if model_file.exists() { Some(TaskModel::load_with(dir, opts)?) } else { None },
            analysis: read_json(&dir.join(files::ANALYSIS))?,
        })
    }
}

/// The note shown in place of a section that needs analysis.json.
pub const ANALYZE_NOTE: &str =
    "No analysis.json in this run folder: run `arithlens analyze RUN_DIR` (or `arithlens run`) to fill this section.";

/// A section built from analysis.json by `f`, or the note to run the analysis.
pub fn analysis_section(
    id: &str,
    title: &str,
    analysis: Option<&serde_json::Value>,
    f: impl Fn(&serde_json::Value) -> Vec<Block>,
) -> Section {
    let mut s = Section::new(id, title);
    match analysis {
        None => s.blocks.push(Block::Note(ANALYZE_NOTE.into())),
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
        Some(a) => s.blocks.extend(analysis_map::attention_table(a)),
        None => s.blocks.push(Block::Note(ANALYZE_NOTE.into())),
    }
    s
}

fn pca_section(d: &RunData) -> Section {
    analysis_section("pca", "PCA of useful heads", d.analysis.as_ref(), |a| {
        let mut b = analysis_map::pca_summary(a);
        if let Some(m) = &d.model {
            let targets = analysis_map::pca_targets(a);
            let figs = targets.iter().filter_map(|(node, task)| pca_view::figure(m, node, task)).take(12);
            b.extend(figs.map(Block::Figure));
        }
        b
    })
}

/// The page for a run.
pub fn build_page(d: &RunData) -> Page {
    let a = d.analysis.as_ref();
    let mut training = training::section(d.log.as_ref());
    training.blocks.extend(a.map(analysis_map::dynamics).unwrap_or_default());
    let name = d.log.as_ref().map(|l| l.config.name.clone()).or_else(|| d.model.as_ref().map(|m| m.name.clone())).unwrap_or_default();
    let sections = vec![
        run_info::section(d.log.as_ref(), d.eval.as_ref()),
        training,
        accuracy::section(d.eval.as_ref()),
        analysis_section("positions", "Where computation happens", a, |a| {
            let mut b = analysis_map::findings(a);
            b.extend(analysis_map::positions(a));
            b
        }),
        attention_section(d),
        analysis_section("nodes", "The node map", a, |a| {
            let mut b = analysis_map::node_map(a);
            b.extend(analysis_map::insertion(a));
            b
        }),
        pca_section(d),
        analysis_section("algorithm", "The algorithm and the symbolic model", a, |a| {
            let mut b = analysis_map::algorithm(a);
            b.extend(analysis_map::symbolic(a));
            b
        }),
    ];
    Page {
        title: format!("arithlens report: {name}"),
        subtitle: format!("Run folder {}. Figures are also saved as SVG under {}/.", d.dir.display(), files::FIGURES),
        sections,
    }
}

/// Writes RUN_DIR/report.html and RUN_DIR/figures/*.svg (each atomically); returns the page's path.
pub fn write_report(dir: &Path) -> Result<PathBuf, String> {
    write_report_with(dir, Default::default())
}

/// [`write_report`] with the model loaded per `opts`.
pub fn write_report_with(dir: &Path, opts: crate::model::file::LoadOptions) -> Result<PathBuf, String> {
    let data = RunData::load_with(dir, opts)?;
    let page = build_page(&data);
    let fig_dir = dir.join(files::FIGURES);
    let mut written = std::collections::HashSet::new();
    for f in page.sections.iter().flat_map(|s| s.figures()) {
        let path = fig_dir.join(format!("{}.svg", f.name));
        crate::io::atomic::write_atomic(&path, f.svg.as_bytes()).map_err(|e| format!("cannot write {}: {e}", path.display()))?;
        written.insert(path);
    }
    remove_stale_figures(&fig_dir, &written);
    let path = dir.join(files::REPORT);
    crate::io::atomic::write_atomic(&path, html::render(&page).as_bytes()).map_err(|e| format!("cannot write {}: {e}", path.display()))?;
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
