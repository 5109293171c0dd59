//! The stages of one analysis, in order: reported as each begins (so a long analysis of a
//! 3-layer model shows where it is) and timed (so analysis.json says where the time went).

use std::time::Instant;

use serde::{Deserialize, Serialize};

/// The stages [`super::analyze`] runs, in order.
pub const STAGES: [&str; 9] = ["accuracy", "positions", "nodes", "attention", "tags", "pca", "symbolic", "ceiling", "insertion"];

/// One stage and the seconds it took.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StageTime {
    /// Stage name (one of [`STAGES`]).
    pub stage: String,
    /// Wall-clock seconds.
    pub seconds: f64,
}

/// Times stages one after another and calls `on_begin(index, name)` as each begins.
pub struct Stopwatch<'a> {
    current: Option<(&'static str, Instant)>,
    times: Vec<StageTime>,
    on_begin: &'a mut dyn FnMut(usize, &str),
}

impl<'a> Stopwatch<'a> {
    /// A stopwatch that reports each stage's start to `on_begin`.
    pub fn new(on_begin: &'a mut dyn FnMut(usize, &str)) -> Stopwatch<'a> {
        Stopwatch { current: None, times: Vec::new(), on_begin }
    }

    /// Ends the running stage (if any) and begins `stage`, which must be one of [`STAGES`].
    pub fn begin(&mut self, stage: &'static str) {
        self.end();
        let index = STAGES.iter().position(|&s| s == stage).expect("a known stage");
        (self.on_begin)(index, stage);
        self.current = Some((stage, Instant::now()));
    }

    /// Ends the running stage and returns every stage's time, in the order run.
    pub fn finish(mut self) -> Vec<StageTime> {
        self.end();
        self.times
    }

    fn end(&mut self) {
        if let Some((stage, t)) = self.current.take() {
            self.times.push(StageTime { stage: stage.to_string(), seconds: t.elapsed().as_secs_f64() });
        }
    }
}

/// "positions 3.1 s, nodes 10.2 s, ...": the stages that took at least a tenth of a second.
pub fn breakdown(times: &[StageTime]) -> String {
    times.iter().filter(|t| t.seconds >= 0.1).map(|t| format!("{} {:.1} s", t.stage, t.seconds)).collect::<Vec<_>>().join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reports_each_stage_in_order_and_times_it() {
        let mut seen = Vec::new();
        let mut on_begin = |i: usize, s: &str| seen.push((i, s.to_string()));
        let mut w = Stopwatch::new(&mut on_begin);
        w.begin("positions");
        std::thread::sleep(std::time::Duration::from_millis(120));
        w.begin("symbolic");
        let times = w.finish();
        assert_eq!(seen, vec![(1, "positions".to_string()), (6, "symbolic".to_string())]);
        assert_eq!(times.iter().map(|t| t.stage.as_str()).collect::<Vec<_>>(), ["positions", "symbolic"]);
        assert!(times[0].seconds >= 0.12, "{times:?}");
    }

    #[test]
    fn breakdown_names_the_stages_that_took_time() {
        let t = |stage: &str, seconds| StageTime { stage: stage.into(), seconds };
        assert_eq!(breakdown(&[t("accuracy", 0.01), t("nodes", 12.34), t("pca", 0.5)]), "nodes 12.3 s, pca 0.5 s");
    }
}
