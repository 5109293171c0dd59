//! The stages of one analysis, in order: reported as each begins and as its work gets done (so
//! a long analysis of a 3-layer model shows where it is) and timed (so analysis.json says where
//! the time went).

use std::time::Instant;

use crate::progress::{Event, Stop, Stopped};

use serde::{Deserialize, Serialize};

/// A stage of [`super::analyze`]; serialised by its lower-case name ("accuracy", ...).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Stage {
    /// The model's accuracy on the analysis questions.
    Accuracy,
    /// Which positions matter (ablation per position).
    Positions,
    /// Which nodes matter (ablation per node).
    Nodes,
    /// How information flows between the useful nodes (path patching, the circuit).
    Circuit,
    /// Where the useful heads attend.
    Attention,
    /// Sub-task tags by activation patching.
    Tags,
    /// PCA of the heads' outputs.
    Pca,
    /// Symbolic formulas against the model's answers.
    Symbolic,
    /// How far any formula over sub-tasks can agree.
    Ceiling,
    /// What became of inserted heads.
    Insertion,
}

impl Stage {
    /// Every stage, in the order they run.
    pub const ALL: [Stage; 10] = [
        Stage::Accuracy,
        Stage::Positions,
        Stage::Nodes,
        Stage::Circuit,
        Stage::Attention,
        Stage::Tags,
        Stage::Pca,
        Stage::Symbolic,
        Stage::Ceiling,
        Stage::Insertion,
    ];

    /// The lower-case name, as in analysis.json.
    pub fn name(self) -> &'static str {
        match self {
            Stage::Accuracy => "accuracy",
            Stage::Positions => "positions",
            Stage::Nodes => "nodes",
            Stage::Circuit => "circuit",
            Stage::Attention => "attention",
            Stage::Tags => "tags",
            Stage::Pca => "pca",
            Stage::Symbolic => "symbolic",
            Stage::Ceiling => "ceiling",
            Stage::Insertion => "insertion",
        }
    }

    /// 1-based place in [`Stage::ALL`], for "[3/10]".
    pub fn number(self) -> usize {
        Stage::ALL.iter().position(|&s| s == self).expect("every stage is listed") + 1
    }
}

/// One stage and the seconds it took.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StageTime {
    /// The stage.
    pub stage: Stage,
    /// Wall-clock seconds.
    pub seconds: f64,
}

/// Where an analysis is: stage `stage` has finished `done` of its `total` passes (both 0 as the
/// stage begins, and for stages too short to count).
fn event(stage: Stage, done: usize, total: usize) -> Event {
    Event::Analysis { stage: stage.name(), number: stage.number(), of: Stage::ALL.len(), done, total }
}

/// Times stages one after another, reports each one's start and progress to `report` as
/// [`Event::Analysis`], and stops before a stage when `stop` is set.
pub struct Stopwatch<'a> {
    current: Option<(Stage, Instant)>,
    times: Vec<StageTime>,
    report: &'a mut dyn FnMut(Event),
    stop: &'a Stop,
}

impl<'a> Stopwatch<'a> {
    /// A stopwatch that reports to `report` and honours `stop`.
    pub fn new(report: &'a mut dyn FnMut(Event), stop: &'a Stop) -> Stopwatch<'a> {
        Stopwatch { current: None, times: Vec::new(), report, stop }
    }

    /// Ends the running stage (if any) and begins `stage`, or stops when a stop was requested.
    pub fn begin(&mut self, stage: Stage) -> Result<(), Stopped> {
        self.end();
        if self.stop.requested() {
            return Err(Stopped(format!(
                "stopped before analysis stage {} ({}/{}): nothing was written; run the same command again to analyze afresh",
                stage.name(),
                stage.number(),
                Stage::ALL.len()
            )));
        }
        (self.report)(event(stage, 0, 0));
        self.current = Some((stage, Instant::now()));
        Ok(())
    }

    /// A callback for the running stage's work: `tick(done, total)`.
    pub fn tick(&mut self) -> impl FnMut(usize, usize) + use<'_, 'a> {
        let stage = self.current.map_or(Stage::Accuracy, |(s, _)| s);
        move |done, total| (self.report)(event(stage, done, total))
    }

    /// Ends the running stage and returns every stage's time, in the order run.
    pub fn finish(mut self) -> Vec<StageTime> {
        self.end();
        self.times
    }

    fn end(&mut self) {
        if let Some((stage, t)) = self.current.take() {
            self.times.push(StageTime { stage, seconds: t.elapsed().as_secs_f64() });
        }
    }
}

/// Maps `f` over `items` in parallel, in order, one item per worker thread at a time (so each
/// call's matrix products run on its own thread, which on small batches beats spreading every
/// product over all threads), calling `tick(done, total)` on this thread after each round.
pub fn par_map_ticked<T: Sync, R: Send>(items: &[T], tick: &mut dyn FnMut(usize, usize), f: impl Fn(&T) -> R + Sync + Send) -> Vec<R> {
    use rayon::prelude::*;
    let round = rayon::current_num_threads().max(1);
    let mut out = Vec::with_capacity(items.len());
    for chunk in items.chunks(round) {
        out.par_extend(chunk.par_iter().map(&f));
        tick(out.len(), items.len());
    }
    out
}

/// "positions 3.1 s, nodes 10.2 s, ...": the stages that took at least a tenth of a second.
pub fn breakdown(times: &[StageTime]) -> String {
    times.iter().filter(|t| t.seconds >= 0.1).map(|t| format!("{} {:.1} s", t.stage.name(), t.seconds)).collect::<Vec<_>>().join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reports_each_stage_and_its_progress_in_order_and_times_it() {
        let mut seen = Vec::new();
        let mut report = |e: Event| seen.push(e);
        let stop = Stop::new();
        let mut w = Stopwatch::new(&mut report, &stop);
        w.begin(Stage::Positions).unwrap();
        w.tick()(1, 2);
        std::thread::sleep(std::time::Duration::from_millis(120));
        w.begin(Stage::Symbolic).unwrap();
        let times = w.finish();
        let e = |stage, number, done, total| Event::Analysis { stage, number, of: 10, done, total };
        assert_eq!(seen, vec![e("positions", 2, 0, 0), e("positions", 2, 1, 2), e("symbolic", 8, 0, 0)]);
        assert_eq!(times.iter().map(|t| t.stage.name()).collect::<Vec<_>>(), ["positions", "symbolic"]);
        assert_eq!(serde_json::to_string(&times[1].stage).unwrap(), "\"symbolic\"", "analysis.json keeps the names");
        assert_eq!((Stage::Accuracy.number(), Stage::Insertion.number()), (1, Stage::ALL.len()));
        assert!(times[0].seconds >= 0.12, "{times:?}");
    }

    #[test]
    fn a_requested_stop_ends_the_analysis_before_the_next_stage() {
        let mut seen = Vec::new();
        let mut report = |e: Event| seen.push(e);
        let stop = Stop::new();
        let mut w = Stopwatch::new(&mut report, &stop);
        w.begin(Stage::Accuracy).unwrap();
        stop.request();
        let err = w.begin(Stage::Positions).unwrap_err();
        assert!(err.0.contains("stopped before analysis stage positions (2/10)"), "{err}");
        assert_eq!(w.finish().len(), 1, "the stage that ran is timed, the refused one is not");
        assert_eq!(seen.len(), 1, "the refused stage is not reported as begun");
    }

    #[test]
    fn par_map_ticked_keeps_the_order_and_ticks_up_to_the_total() {
        let items: Vec<u64> = (0..37).collect();
        let mut ticks = Vec::new();
        let squares = par_map_ticked(&items, &mut |done, total| ticks.push((done, total)), |&x| x * x);
        assert_eq!(squares, items.iter().map(|x| x * x).collect::<Vec<_>>());
        assert_eq!(ticks.last(), Some(&(37, 37)));
        assert!(ticks.windows(2).all(|w| w[0].0 < w[1].0), "{ticks:?}");
    }

    #[test]
    fn breakdown_names_the_stages_that_took_time() {
        let t = |stage, seconds| StageTime { stage, seconds };
        assert_eq!(breakdown(&[t(Stage::Accuracy, 0.01), t(Stage::Nodes, 12.34), t(Stage::Pca, 0.5)]), "nodes 12.3 s, pca 0.5 s");
    }
}
