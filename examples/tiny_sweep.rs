use arithlens::eval::predict::teacher_forced;
use arithlens::task::generate::all_questions;
use arithlens::task::Op;
use arithlens::task_model::TaskModel;
use arithlens::train::{TrainConfig, Trainer};
fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let cfg = TrainConfig::preset("tiny").unwrap().with_overrides(&args).unwrap();
    let mut t = Trainer::new(cfg.clone()).unwrap();
    let st = std::time::Instant::now();
    t.train(std::path::Path::new("/tmp/sweep"), &mut |_| {}).unwrap();
    let m = TaskModel::load(std::path::Path::new("/tmp/sweep")).unwrap();
    let qs: Vec<_> = all_questions(2, Op::Add).unwrap().collect();
    let p = teacher_forced(&m, &qs, 1000);
    let ok = qs.iter().enumerate().filter(|(i, q)| p.correct(*i, &q.answer_tokens(m.format))).count();
    println!("{args:?}: {ok}/{} correct, loss {:.2e}, {:.1}s", qs.len(), t.last_loss().unwrap(), st.elapsed().as_secs_f64());
}
