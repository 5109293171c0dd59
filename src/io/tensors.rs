//! Named tensors (f32, or int64 for the integer ones) in safetensors files (the format Python
//! users open with `safetensors.torch.load_file`), with string metadata.

use super::{IoError, TensorFileError};
use safetensors::tensor::{Dtype, SafeTensors, TensorInfo, TensorView, View};
use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::path::Path;

/// One named tensor: row-major f32 data and its shape.
#[derive(Clone, Debug, PartialEq)]
pub struct Tensor {
    /// Dimensions, outermost first.
    pub shape: Vec<usize>,
    /// Row-major values; `data.len()` is the product of `shape`.
    pub data: Vec<f32>,
}

/// Tensors by name plus the file's string metadata.
#[derive(Clone, Debug, Default)]
pub struct TensorFile {
    /// Tensors by name, sorted.
    pub tensors: BTreeMap<String, Tensor>,
    /// The `__metadata__` map.
    pub metadata: BTreeMap<String, String>,
    /// Names of tensors whose values are integers (token ids): written as int64, so Python gets
    /// the integer tensor a model takes; read back as f32 like every tensor.
    pub integer: BTreeSet<String>,
}

/// A tensor borrowed for writing: name, shape and values (no copy is made).
pub type TensorRef<'a> = (String, Vec<usize>, &'a [f32]);

fn views<'a>(tensors: &[TensorRef<'a>]) -> Result<Vec<(String, TensorView<'a>)>, TensorFileError> {
    const { assert!(cfg!(target_endian = "little"), "safetensors stores little-endian values") };
    tensors
        .iter()
        .map(|&(ref k, ref shape, data)| {
            let bytes: &'a [u8] = bytemuck::cast_slice(data);
            TensorView::new(Dtype::F32, shape.clone(), bytes).map(|v| (k.clone(), v)).map_err(|e| bad_tensor(k, e))
        })
        .collect()
}

fn borrow(file: &TensorFile) -> Vec<TensorRef<'_>> {
    file.tensors.iter().filter(|(k, _)| !file.integer.contains(*k)).map(|(k, t)| (k.clone(), t.shape.clone(), &t.data[..])).collect()
}

/// The little-endian int64 bytes of `file`'s integer tensors, by name.
pub fn integer_bytes(file: &TensorFile) -> BTreeMap<&str, (Vec<usize>, Vec<u8>)> {
    let ints = file.integer.iter().filter_map(|k| file.tensors.get_key_value(k));
    ints.map(|(k, t)| (k.as_str(), (t.shape.clone(), t.data.iter().flat_map(|&v| (v as i64).to_le_bytes()).collect()))).collect()
}

/// Every tensor of `file` as a view: f32 ones borrowed, integer ones over `ints`.
fn file_views<'a>(
    file: &'a TensorFile,
    ints: &'a BTreeMap<&str, (Vec<usize>, Vec<u8>)>,
) -> Result<Vec<(String, TensorView<'a>)>, TensorFileError> {
    let refs = borrow(file);
    let mut all = views(&refs)?;
    for (k, (shape, bytes)) in ints {
        all.push((k.to_string(), TensorView::new(Dtype::I64, shape.clone(), bytes).map_err(|e| bad_tensor(k, e))?));
    }
    Ok(all)
}

/// The safetensors header of `views` in the order their data follows it: the 8-byte length,
/// then the JSON (`__metadata__` first, its keys sorted, then the tensors as safetensors orders
/// them: by dtype, widest first, then by name), padded with spaces to a multiple of 8 bytes.
/// Written here rather than by the safetensors crate, whose metadata is a `HashMap`: its key
/// order changes from run to run, and the same model must give the same bytes.
fn header<'a>(mut views: Vec<(String, TensorView<'a>)>, metadata: &BTreeMap<String, String>) -> (Vec<u8>, Vec<TensorView<'a>>) {
    views.sort_by(|(a, x), (b, y)| y.dtype().cmp(&x.dtype()).then(a.cmp(b)));
    // A string map, strings and shapes always serialise.
    let mut json = format!("{{\"__metadata__\":{}", serde_json::to_string(metadata).expect("a string map serialises"));
    let mut offset = 0;
    for (name, v) in &views {
        let end = offset + v.data_len();
        let info = TensorInfo { dtype: v.dtype(), shape: v.shape().to_vec(), data_offsets: (offset, end) };
        let (name, info) = (serde_json::to_string(name), serde_json::to_string(&info));
        json += &format!(",{}:{}", name.expect("a string serialises"), info.expect("a tensor's info serialises"));
        offset = end;
    }
    json.push('}');
    while !json.len().is_multiple_of(8) {
        json.push(' ');
    }
    let mut bytes = (json.len() as u64).to_le_bytes().to_vec();
    bytes.extend_from_slice(json.as_bytes());
    (bytes, views.into_iter().map(|(_, v)| v).collect())
}

fn bad_tensor(tensor: &str, e: safetensors::SafeTensorError) -> TensorFileError {
    TensorFileError::Tensor { tensor: tensor.to_string(), reason: e.to_string() }
}

/// Serialises tensors and metadata to safetensors bytes (the same bytes for the same contents).
pub fn to_bytes(file: &TensorFile) -> Result<Vec<u8>, TensorFileError> {
    let ints = integer_bytes(file);
    let (mut bytes, views) = header(file_views(file, &ints)?, &file.metadata);
    views.iter().for_each(|v| bytes.extend_from_slice(v.data()));
    Ok(bytes)
}

/// Writes tensors atomically to `path`.
pub fn save(path: &Path, file: &TensorFile) -> Result<(), TensorFileError> {
    let ints = integer_bytes(file);
    write_views(path, file_views(file, &ints)?, &file.metadata)
}

/// Writes borrowed tensors atomically to `path`, streaming them to disk without copying (a
/// checkpoint of the paper's model would otherwise need ~80 MB of transient copies).
pub fn save_refs(path: &Path, tensors: &[TensorRef<'_>], metadata: &BTreeMap<String, String>) -> Result<(), TensorFileError> {
    write_views(path, views(tensors)?, metadata)
}

fn write_views(path: &Path, views: Vec<(String, TensorView<'_>)>, metadata: &BTreeMap<String, String>) -> Result<(), TensorFileError> {
    let (head, views) = header(views, metadata);
    super::atomic::write_with(path, |tmp| {
        let mut w = std::io::BufWriter::with_capacity(1 << 20, std::fs::File::create(tmp)?);
        w.write_all(&head)?;
        views.iter().try_for_each(|v| w.write_all(v.data()))?;
        w.into_inner().map_err(|e| e.into_error())?;
        Ok(())
    })
    .map_err(|source| IoError::Write { path: path.to_path_buf(), source }.into())
}

/// Parses safetensors bytes; f64, bf16 and integer tensors are converted to f32.
pub fn from_bytes(bytes: &[u8], what: &str) -> Result<TensorFile, TensorFileError> {
    let st =
        SafeTensors::deserialize(bytes).map_err(|e| TensorFileError::NotSafetensors { what: what.to_string(), reason: e.to_string() })?;
    let (_, meta) =
        SafeTensors::read_metadata(bytes).map_err(|e| TensorFileError::Header { what: what.to_string(), reason: e.to_string() })?;
    let metadata = meta.metadata().clone().unwrap_or_default().into_iter().collect();
    let (mut tensors, mut integer) = (BTreeMap::new(), BTreeSet::new());
    for (name, view) in st.iter() {
        if matches!(view.dtype(), Dtype::I64 | Dtype::I32) {
            integer.insert(name.to_string());
        }
        let data = to_f32(view.dtype(), view.data()).ok_or_else(|| TensorFileError::Dtype {
            what: what.to_string(),
            tensor: name.to_string(),
            dtype: format!("{:?}", view.dtype()),
        })?;
        tensors.insert(name.to_string(), Tensor { shape: view.shape().to_vec(), data });
    }
    Ok(TensorFile { tensors, metadata, integer })
}

/// Reads a safetensors file, with errors that name the file.
pub fn load(path: &Path) -> Result<TensorFile, TensorFileError> {
    let bytes = std::fs::read(path).map_err(|source| IoError::Read { path: path.to_path_buf(), source })?;
    from_bytes(&bytes, &path.display().to_string())
}

fn to_f32(dtype: Dtype, b: &[u8]) -> Option<Vec<f32>> {
    fn chunks<const N: usize>(b: &[u8]) -> impl Iterator<Item = [u8; N]> + '_ {
        b.chunks_exact(N).map(|c| c.try_into().unwrap())
    }
    Some(match dtype {
        Dtype::F32 => chunks::<4>(b).map(f32::from_le_bytes).collect(),
        Dtype::F64 => chunks::<8>(b).map(|c| f64::from_le_bytes(c) as f32).collect(),
        Dtype::BF16 => chunks::<2>(b).map(|c| f32::from_bits((u16::from_le_bytes(c) as u32) << 16)).collect(),
        Dtype::I64 => chunks::<8>(b).map(|c| i64::from_le_bytes(c) as f32).collect(),
        Dtype::I32 => chunks::<4>(b).map(|c| i32::from_le_bytes(c) as f32).collect(),
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_rejects_truncated_files() {
        let mut f = TensorFile::default();
        f.tensors.insert("a.W".into(), Tensor { shape: vec![2, 3], data: vec![1.0, 2.0, 3.0, 4.0, 5.0, -6.5] });
        f.metadata.insert("k".into(), "v".into());
        let bytes = to_bytes(&f).unwrap();
        let back = from_bytes(&bytes, "x").unwrap();
        assert_eq!(back.tensors, f.tensors);
        assert_eq!(back.metadata["k"], "v");
        assert!(back.integer.is_empty());
        // An integer tensor is stored as int64 and read back as the same values.
        f.tensors.insert("tokens".into(), Tensor { shape: vec![3], data: vec![1.0, 14.0, 0.0] });
        f.integer.insert("tokens".into());
        let ints = to_bytes(&f).unwrap();
        assert_eq!(SafeTensors::deserialize(&ints).unwrap().tensor("tokens").unwrap().dtype(), Dtype::I64);
        let back = from_bytes(&ints, "x").unwrap();
        assert_eq!((back.tensors, back.integer), (f.tensors, f.integer));
        let err = from_bytes(&bytes[..bytes.len() - 3], "model.safetensors").unwrap_err();
        assert!(err.to_string().contains("not a valid safetensors file"), "{err}");
    }

    fn sample(keys: usize) -> TensorFile {
        let mut f = TensorFile::default();
        f.tensors.insert("b.W".into(), Tensor { shape: vec![2, 2], data: vec![1.0, -2.0, 3.5, 0.0] });
        f.tensors.insert("a.b".into(), Tensor { shape: vec![3], data: vec![0.25, 1.0, 2.0] });
        f.tensors.insert("tokens".into(), Tensor { shape: vec![2], data: vec![3.0, 11.0] });
        f.integer.insert("tokens".into());
        f.metadata = (0..keys).map(|i| (format!("key{i}"), format!("value \"{i}\""))).collect();
        f
    }

    #[test]
    fn the_same_contents_give_the_same_bytes_whatever_the_metadata_order() {
        // Each HashMap gets its own random order: the old writer gave different bytes here.
        let first = to_bytes(&sample(12)).unwrap();
        for _ in 0..8 {
            assert_eq!(to_bytes(&sample(12)).unwrap(), first, "metadata order must not change the bytes");
        }
        let n = u64::from_le_bytes(first[..8].try_into().unwrap()) as usize;
        let head = std::str::from_utf8(&first[8..8 + n]).unwrap();
        let keys: Vec<usize> = (0..12).map(|i| head.find(&format!("\"key{i}\"")).unwrap()).collect();
        let mut sorted_by_name: Vec<(String, usize)> = (0..12).map(|i| (format!("key{i}"), keys[i])).collect();
        sorted_by_name.sort();
        assert!(sorted_by_name.windows(2).all(|w| w[0].1 < w[1].1), "metadata keys are written sorted: {head}");
        // Streaming to a file gives the same bytes as `to_bytes`.
        let path = std::env::temp_dir().join(format!("arithlens-tensors-{}.safetensors", std::process::id()));
        save(&path, &sample(12)).unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), first);
        std::fs::remove_file(path).unwrap();
    }

    #[test]
    fn the_layout_is_the_one_the_safetensors_crate_writes() {
        // With at most one metadata key there is no order to differ: the bytes must be equal.
        for keys in [0, 1] {
            let f = sample(keys);
            let ints = integer_bytes(&f);
            let meta = f.metadata.clone().into_iter().collect();
            let theirs = safetensors::serialize(file_views(&f, &ints).unwrap(), Some(meta)).unwrap();
            assert_eq!(to_bytes(&f).unwrap(), theirs);
        }
    }
}
