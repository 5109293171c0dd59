//! `arithlens cache` runs its forward passes in batches (a bounded workspace whatever the
//! question count): the file it writes is byte-identical whatever the batch size.

use arithlens::analysis::intervene::full_cache_in_batches;
use arithlens::task_model::TaskModel;
use arithlens::train::{TrainConfig, Trainer};

#[test]
fn a_cache_in_small_batches_is_byte_identical_to_one_batch() {
    let mut cfg = TrainConfig::preset("tiny_mix").unwrap();
    cfg.model.n_layers = 2;
    let model = TaskModel::from_file(Trainer::new(cfg).unwrap().model_file(), "test").unwrap();
    let mut qs = Vec::new();
    for (i, &op) in model.ops.iter().enumerate() {
        qs.extend(arithlens::task::generate::random_questions(model.n_digits, op, 37, 5 + i as u64).unwrap());
    }
    let names = ["hook_embed", "blocks.0.attn.hook_pattern", "blocks.1.attn.hook_z", "blocks.1.hook_resid_post"];
    let bytes = |batch: usize| {
        let file = full_cache_in_batches(&model, &qs, &names, batch).to_tensor_file();
        arithlens::io::tensors::to_bytes(&file).unwrap()
    };
    let whole = bytes(qs.len());
    assert!(whole.len() > 74 * 4 * model.n_ctx(), "the cache holds the hooks' values");
    for batch in [1, 5, 32] {
        assert!(bytes(batch) == whole, "batches of {batch} give another file");
    }
    // All the hooks when none is named, batched too.
    let all = |batch: usize| arithlens::io::tensors::to_bytes(&full_cache_in_batches(&model, &qs, &[], batch).to_tensor_file()).unwrap();
    assert!(all(7) == all(qs.len()));
}
