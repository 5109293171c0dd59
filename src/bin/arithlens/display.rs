//! The command line's view of the library's progress events ([`arithlens::progress::Event`]):
//! notes as lines on standard error; training as a bar on a terminal, else a line every 10
//! seconds; evaluation sets and analysis stages as a bar each on a terminal, else a line every
//! 30 seconds with the time left at the rate so far.

use arithlens::pipeline::TrainSession;
use arithlens::progress::Event;
use std::io::IsTerminal;
use std::time::Instant;

/// Shows every event of one command.
pub struct Display {
    /// No training progress (`--quiet`).
    quiet: bool,
    train: Option<TrainBar>,
    stages: StageBar,
    /// When the analysis began (its first stage), for "(N s so far)".
    analysis_start: Instant,
}

impl Display {
    /// A display; `quiet` hides training progress, `hide_stages` the evaluation's and
    /// analysis's bars (for `eval --json`).
    pub fn new(quiet: bool, hide_stages: bool) -> Display {
        Display { quiet, train: None, stages: StageBar::new(hide_stages), analysis_start: Instant::now() }
    }

    /// Shows `e`.
    pub fn show(&mut self, e: Event) {
        match e {
            Event::Note(line) => eprintln!("{line}"),
            Event::Train { step, steps, loss, steps_per_s } if !self.quiet => {
                self.train.get_or_insert_with(|| TrainBar::new(steps, step)).update(step, steps, loss, steps_per_s)
            }
            Event::Train { .. } => {}
            Event::Eval { set, done, total } => self.stages.update(&set, done, total),
            Event::Analysis { stage, number, of, done: _, total: 0 } => {
                self.stages.finish();
                if number == 1 {
                    self.analysis_start = Instant::now();
                }
                eprintln!("analyze [{number}/{of}] {stage} ({:.0} s so far)", self.analysis_start.elapsed().as_secs_f64());
            }
            Event::Analysis { stage, done, total, .. } => self.stages.update(&format!("analyze {stage}"), done as u64, total as u64),
        }
    }

    /// Ends the bars of a step that finished (or failed): a training bar is left as it stands,
    /// an evaluation or analysis bar completed (or its last line printed).
    pub fn finish(&mut self) {
        if let Some(t) = self.train.take() {
            if let Some(b) = t.bar {
                b.abandon();
            }
        }
        self.stages.finish();
    }

    /// Ends training's bar after a finished session, with the final loss and speed.
    pub fn trained(&mut self, session: &TrainSession) {
        if let Some(b) = self.train.take().and_then(|t| t.bar) {
            b.finish();
        }
        if !self.quiet {
            eprintln!("done: final loss {:.3e}, {:.1} steps/s", session.final_loss.unwrap_or(f64::NAN), session.steps_per_s);
        }
    }
}

/// Training progress: a bar on a terminal, periodic lines otherwise.
struct TrainBar {
    bar: Option<indicatif::ProgressBar>,
    last_line: Instant,
}

impl TrainBar {
    fn new(total: u64, done: u64) -> TrainBar {
        let bar = std::io::stderr().is_terminal().then(|| {
            let b = indicatif::ProgressBar::new(total).with_position(done);
            let style = indicatif::ProgressStyle::with_template("{bar:40} {pos}/{len} steps  {msg}  [{elapsed_precise} < {eta_precise}]")
                .expect("valid template");
            b.set_style(style);
            b
        });
        TrainBar { bar, last_line: Instant::now() }
    }

    fn update(&mut self, step: u64, steps: u64, loss: Option<f64>, steps_per_s: f64) {
        // The loss of the last logged record (none before the first `log_every` steps).
        let loss = loss.map_or("-".to_string(), |l| format!("{l:.3e}"));
        let msg = format!("loss {loss}  {steps_per_s:.1} steps/s");
        if let Some(b) = &self.bar {
            b.set_position(step);
            b.set_message(msg);
        } else if self.last_line.elapsed().as_secs() >= 10 || step == steps {
            let left = eta((steps - step) as f64, steps_per_s);
            eprintln!("step {step}/{steps}  {msg}{left}");
            self.last_line = Instant::now();
        }
    }
}

/// `"  eta 1h05m"`: how long `remaining` units take at `rate` units per second, for progress
/// lines in a log file (a terminal's bar shows its own); empty while no rate is known and once
/// nothing remains.
fn eta(remaining: f64, rate: f64) -> String {
    if !(rate > 0.0 && remaining > 0.0 && remaining.is_finite()) {
        return String::new();
    }
    let s = (remaining / rate).ceil() as u64;
    match (s / 3600, s / 60 % 60, s % 60) {
        (0, 0, s) => format!("  eta {s}s"),
        (0, m, s) => format!("  eta {m}m{s:02}s"),
        (h, m, _) => format!("  eta {h}h{m:02}m"),
    }
}

/// A progress bar per stage on a terminal; otherwise (a log file) a line every 30 seconds, with
/// the time left at the stage's rate so far, and at the end of each stage; nothing with `hidden`.
struct StageBar {
    bar: Option<indicatif::ProgressBar>,
    stage: String,
    hidden: bool,
    terminal: bool,
    last: Option<(Instant, u64, u64)>,
    /// When the current stage began, and how much of it was done then (a resumed evaluation).
    started: Option<(Instant, u64)>,
}

impl StageBar {
    fn new(hidden: bool) -> StageBar {
        StageBar { bar: None, stage: String::new(), hidden, terminal: std::io::stderr().is_terminal(), last: None, started: None }
    }

    fn update(&mut self, stage: &str, done: u64, total: u64) {
        if self.hidden {
            return;
        }
        if self.stage != stage {
            self.finish();
            self.stage = stage.to_string();
            if self.terminal {
                let b = indicatif::ProgressBar::new(total);
                let style = indicatif::ProgressStyle::with_template("{msg:>24} {bar:40} {pos}/{len} [{elapsed_precise} < {eta_precise}]")
                    .expect("valid template");
                b.set_style(style);
                b.set_message(stage.to_string());
                self.bar = Some(b);
            }
            self.last = Some((Instant::now(), done, total));
            self.started = Some((Instant::now(), done));
        }
        if let Some(b) = &self.bar {
            b.set_position(done);
        } else if let Some((at, _, _)) = self.last {
            if at.elapsed().as_secs() >= 30 {
                let (since, from) = self.started.expect("set with the stage");
                let rate = done.saturating_sub(from) as f64 / since.elapsed().as_secs_f64();
                eprintln!("{stage}: {done}/{total}{}", eta(total.saturating_sub(done) as f64, rate));
                self.last = Some((Instant::now(), done, total));
            } else {
                self.last = Some((at, done, total));
            }
        }
    }

    fn finish(&mut self) {
        if let Some(b) = self.bar.take() {
            b.finish();
        } else if let Some((_, done, total)) = self.last.take() {
            eprintln!("{}: {done}/{total}", self.stage);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::eta;

    #[test]
    fn eta_reads_as_hours_minutes_or_seconds() {
        assert_eq!(eta(100.0, 4.0), "  eta 25s");
        assert_eq!(eta(36_000.0, 4.0), "  eta 2h30m");
        assert_eq!(eta(1_000.0, 4.0), "  eta 4m10s");
        assert_eq!(eta(1_000.0, 0.0), "", "no rate yet, no estimate");
        assert_eq!(eta(0.0, 4.0), "", "nothing left, no estimate");
    }
}
