//! NumPy files: named tensors as one `.npz` (a zip of `.npy` arrays, stored uncompressed), which
//! Python opens with `numpy.load(path)["blocks.0.attn.hook_pattern"]`, no torch needed.

use super::tensors::TensorFile;
use super::{IoError, TensorFileError};
use std::io::Write;
use std::path::Path;

/// The `.npy` (format 1.0) header of a C-order array: magic, version, header length, and the
/// dict padded with spaces so that the data starts at a multiple of 64 bytes.
pub fn npy_header(descr: &str, shape: &[usize]) -> Vec<u8> {
    let dims = match shape {
        [n] => format!("({n},)"),
        _ => format!("({})", shape.iter().map(|d| d.to_string()).collect::<Vec<_>>().join(", ")),
    };
    let mut dict = format!("{{'descr': '{descr}', 'fortran_order': False, 'shape': {dims}, }}");
    let unpadded = 10 + dict.len() + 1;
    dict.push_str(&" ".repeat((64 - unpadded % 64) % 64));
    dict.push('\n');
    let mut out = b"\x93NUMPY\x01\x00".to_vec();
    out.extend_from_slice(&(dict.len() as u16).to_le_bytes());
    out.extend_from_slice(dict.as_bytes());
    out
}

/// A 0-d unicode array (`<U{n}`, UTF-32 little-endian) holding `text`.
fn npy_string(text: &str) -> Vec<u8> {
    let chars: Vec<char> = text.chars().collect();
    let mut out = npy_header(&format!("<U{}", chars.len().max(1)), &[]);
    chars.iter().for_each(|c| out.extend_from_slice(&(*c as u32).to_le_bytes()));
    if chars.is_empty() {
        out.extend_from_slice(&[0; 4]);
    }
    out
}

/// A 1-d unicode array (`<U{longest}`, shape `[n]`, UTF-32 little-endian, each entry padded
/// with NUL characters as NumPy pads them) holding `values`.
fn npy_string_array(values: &[String]) -> Vec<u8> {
    let width = values.iter().map(|v| v.chars().count()).max().unwrap_or(0).max(1);
    let mut out = npy_header(&format!("<U{width}"), &[values.len()]);
    for v in values {
        let n = v.chars().count();
        v.chars().for_each(|c| out.extend_from_slice(&(c as u32).to_le_bytes()));
        out.extend(std::iter::repeat_n(0u8, 4 * (width - n)));
    }
    out
}

/// Writes every tensor of `file` as `NAME.npy` (float32, or int64 for its integer tensors) and
/// every metadata entry as a 0-d string array `KEY.npy` into an `.npz` at `path`, atomically.
pub fn save_npz(path: &Path, file: &TensorFile) -> Result<(), TensorFileError> {
    save_npz_with_strings(path, file, &[])
}

/// [`save_npz`] plus string arrays (`NAME.npy`, shape `[n]`, e.g. one question per entry).
pub fn save_npz_with_strings(path: &Path, file: &TensorFile, strings: &[(&str, &[String])]) -> Result<(), TensorFileError> {
    use zip::write::SimpleFileOptions;
    const { assert!(cfg!(target_endian = "little"), ".npy data is written as '<f4'") };
    let mut names: Vec<&str> = file.metadata.keys().map(String::as_str).collect();
    names.extend(strings.iter().map(|s| s.0));
    if let Some(key) = names.iter().enumerate().find(|(i, k)| file.tensors.contains_key(**k) || names[..*i].contains(k)).map(|x| x.1) {
        return Err(TensorFileError::NameClash { path: path.to_path_buf(), key: key.to_string() });
    }
    let write = |tmp: &Path| -> zip::result::ZipResult<()> {
        let mut z = zip::ZipWriter::new(std::io::BufWriter::new(std::fs::File::create(tmp)?));
        // A fixed entry time (1980-01-01): the same arrays give the same bytes.
        let stored =
            SimpleFileOptions::default().compression_method(zip::CompressionMethod::Stored).last_modified_time(zip::DateTime::default());
        let ints = super::tensors::integer_bytes(file);
        for (name, t) in &file.tensors {
            let (descr, data): (&str, &[u8]) = match ints.get(name.as_str()) {
                Some((_, bytes)) => ("<i8", bytes),
                None => ("<f4", bytemuck::cast_slice(&t.data)),
            };
            // Entries of 4 GiB and more need zip64, which the writer must be told of in advance.
            let large = (data.len() + 4096) as u64 > u32::MAX as u64;
            z.start_file(format!("{name}.npy"), stored.large_file(large))?;
            z.write_all(&npy_header(descr, &t.shape))?;
            z.write_all(data)?;
        }
        for (key, value) in &file.metadata {
            z.start_file(format!("{key}.npy"), stored)?;
            z.write_all(&npy_string(value))?;
        }
        for (key, values) in strings {
            let bytes = npy_string_array(values);
            z.start_file(format!("{key}.npy"), stored.large_file((bytes.len() + 4096) as u64 > u32::MAX as u64))?;
            z.write_all(&bytes)?;
        }
        z.finish()?.flush()?;
        Ok(())
    };
    super::atomic::write_with(path, |tmp| write(tmp).map_err(std::io::Error::other))
        .map_err(|source| IoError::Write { path: path.to_path_buf(), source }.into())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::io::tensors::Tensor;
    use std::io::Read;

    #[test]
    fn a_metadata_entry_named_like_a_tensor_is_refused_and_nothing_is_written() {
        let dir = std::env::temp_dir().join(format!("arithlens-npz-clash-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let mut f = TensorFile::default();
        f.tensors.insert("tokens".into(), Tensor { shape: vec![1], data: vec![1.0] });
        f.metadata.insert("tokens".into(), "1+2=".into());
        let path = dir.join("c.npz");
        let err = save_npz(&path, &f).unwrap_err();
        assert!(err.to_string().contains("metadata entry 'tokens' has the name of a tensor"), "{err}");
        assert!(std::fs::read_dir(&dir).unwrap().next().is_none(), "nothing may be left on disk");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// Splits a `.npy` into its header dict and data, checking the format-1.0 framing.
    fn parse(bytes: &[u8]) -> (String, &[u8]) {
        assert_eq!(&bytes[..8], b"\x93NUMPY\x01\x00");
        let n = u16::from_le_bytes([bytes[8], bytes[9]]) as usize;
        assert_eq!((10 + n) % 64, 0, "data must start at a multiple of 64");
        let dict = std::str::from_utf8(&bytes[10..10 + n]).unwrap();
        assert!(dict.ends_with('\n'));
        (dict.trim_end().to_string(), &bytes[10 + n..])
    }

    #[test]
    fn npz_holds_each_tensor_and_metadata_entry_as_an_npy_array() {
        let mut f = TensorFile::default();
        f.tensors.insert(
            "blocks.0.attn.hook_pattern".into(),
            Tensor { shape: vec![1, 2, 2, 2], data: (0..8).map(|i| i as f32 * 0.5).collect() },
        );
        f.tensors.insert("tokens".into(), Tensor { shape: vec![3], data: vec![1.0, 10.0, 2.0] });
        f.integer.insert("tokens".into());
        f.metadata.insert("questions".into(), "1+2= 3+4=".into());
        let path = std::env::temp_dir().join(format!("arithlens-npz-{}.npz", std::process::id()));
        save_npz(&path, &f).unwrap();
        let mut z = zip::ZipArchive::new(std::fs::File::open(&path).unwrap()).unwrap();
        let mut read = |name: &str| {
            let mut b = Vec::new();
            z.by_name(name).unwrap().read_to_end(&mut b).unwrap();
            b
        };
        let b = read("blocks.0.attn.hook_pattern.npy");
        let (dict, data) = parse(&b);
        assert_eq!(dict, "{'descr': '<f4', 'fortran_order': False, 'shape': (1, 2, 2, 2), }");
        assert_eq!(data, bytemuck::cast_slice::<f32, u8>(&f.tensors["blocks.0.attn.hook_pattern"].data));
        let b = read("tokens.npy");
        let (dict, data) = parse(&b);
        assert_eq!(dict, "{'descr': '<i8', 'fortran_order': False, 'shape': (3,), }", "a 1-d shape needs its trailing comma");
        assert_eq!(data, [1i64, 10, 2].iter().flat_map(|v| v.to_le_bytes()).collect::<Vec<u8>>());
        let b = read("questions.npy");
        let (dict, data) = parse(&b);
        assert_eq!(dict, "{'descr': '<U9', 'fortran_order': False, 'shape': (), }");
        let text: String = data.chunks_exact(4).map(|c| char::from_u32(u32::from_le_bytes(c.try_into().unwrap())).unwrap()).collect();
        assert_eq!(text, "1+2= 3+4=");
        std::fs::remove_file(path).unwrap();
    }
}
