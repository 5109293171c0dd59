//! Model files: round trip, TransformerLens state dicts without our metadata, and clear errors
//! for truncated, corrupt, incomplete or inconsistent files.

use arithlens::io::tensors;
use arithlens::task_model::TaskModel;
use arithlens::train::{TrainConfig, Trainer};
use std::path::PathBuf;

fn saved_model(name: &str) -> (PathBuf, Vec<u8>) {
    let dir = std::env::temp_dir().join(format!("arithlens-files-{}-{name}", std::process::id()));
    let t = Trainer::new(TrainConfig::preset("tiny").unwrap()).unwrap();
    let path = dir.join("model.safetensors");
    t.model_file().save(&path).unwrap();
    let bytes = std::fs::read(&path).unwrap();
    (path, bytes)
}

fn load_err(path: &PathBuf, bytes: &[u8]) -> String {
    std::fs::write(path, bytes).unwrap();
    TaskModel::load(path).unwrap_err().to_string()
}

#[test]
fn round_trip_keeps_weights_config_and_task() {
    let (path, _) = saved_model("rt");
    let m = TaskModel::load(&path).unwrap();
    let again = TaskModel::load(path.parent().unwrap()).unwrap();
    assert_eq!(m.params.data, again.params.data);
    assert_eq!((m.n_digits, m.params.config.d_model), (2, 64));
}

#[test]
fn a_transformer_lens_state_dict_without_metadata_loads() {
    let fixture = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/transformer_lens/add_d3_l2_ln_relu.model.safetensors");
    let mut f = tensors::load(&fixture).unwrap();
    f.metadata.clear();
    let dir = std::env::temp_dir().join(format!("arithlens-files-{}-tl", std::process::id()));
    let path = dir.join("state_dict.safetensors");
    tensors::save(&path, &f).unwrap();
    let m = TaskModel::load(&path).unwrap();
    assert_eq!((m.n_digits, m.params.config.n_layers, m.params.config.n_heads, m.params.config.d_mlp), (3, 2, 3, 96));
}

#[test]
fn broken_files_get_errors_that_say_what_is_wrong() {
    let (path, bytes) = saved_model("broken");
    let e = load_err(&path, &bytes[..bytes.len() / 2]);
    assert!(e.contains("not a valid safetensors file") && e.contains("truncated"), "{e}");
    let e = load_err(&path, b"hello, not a model");
    assert!(e.contains("not a valid safetensors file"), "{e}");
    let mut f = tensors::from_bytes(&bytes, "m").unwrap();
    f.tensors.remove("blocks.0.mlp.W_in");
    let e = load_err(&path, &tensors::to_bytes(&f).unwrap());
    assert!(e.contains("'blocks.0.mlp.W_in' is missing"), "{e}");
    let mut f = tensors::from_bytes(&bytes, "m").unwrap();
    f.tensors.get_mut("unembed.W_U").unwrap().shape = vec![12, 64];
    let e = load_err(&path, &tensors::to_bytes(&f).unwrap());
    assert!(e.contains("'unembed.W_U' has shape [12, 64] but the config needs [64, 12]"), "{e}");
    let mut f = tensors::from_bytes(&bytes, "m").unwrap();
    f.metadata.insert("n_digits".into(), "5".into());
    let e = load_err(&path, &tensors::to_bytes(&f).unwrap());
    assert!(e.contains("5-digit") && e.contains("n_ctx"), "{e}");
    let mut f = tensors::from_bytes(&bytes, "m").unwrap();
    f.metadata.insert("config".into(), "{\"n_layers\": 1}".into());
    let e = load_err(&path, &tensors::to_bytes(&f).unwrap());
    assert!(e.contains("'config' metadata is not a valid model config"), "{e}");
    let e = TaskModel::load(&path.with_file_name("nope.safetensors")).unwrap_err().to_string();
    assert!(e.contains("no model at"), "{e}");
}
