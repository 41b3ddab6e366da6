//! Hand-made input files for the integration tests (IDX files, `.npy` entries, zip archives) and
//! the scratch folders they are written to.

use std::ffi::OsStr;
use std::io::{Cursor, Write};
use std::ops::Deref;
use std::path::Path;

/// A new empty folder under the system's temporary folder, named `backprop-{name}-` and a
/// random suffix, removed with everything in it when dropped (when its test ends, passing or
/// failing), so test runs leave nothing behind. Derefs to its path.
#[derive(Debug)]
pub struct Scratch(tempfile::TempDir);

impl Scratch {
    pub fn new(name: &str) -> Self {
        let folder = tempfile::Builder::new()
            .prefix(&format!("backprop-{name}-"))
            .tempdir()
            .expect("a scratch folder under the temporary folder");
        Scratch(folder)
    }
}

impl Deref for Scratch {
    type Target = Path;

    fn deref(&self) -> &Path {
        self.0.path()
    }
}

impl AsRef<Path> for Scratch {
    fn as_ref(&self) -> &Path {
        self.0.path()
    }
}

impl AsRef<OsStr> for Scratch {
    fn as_ref(&self) -> &OsStr {
        self.0.path().as_os_str()
    }
}

/// An IDX file: the big-endian magic and sizes, then `data`.
pub fn idx(magic: u32, sizes: &[u32], data: &[u8]) -> Vec<u8> {
    let mut bytes = magic.to_be_bytes().to_vec();
    for size in sizes {
        bytes.extend(size.to_be_bytes());
    }
    bytes.extend(data);
    bytes
}

/// An `.npy` (version 1) entry: the preamble, `dict` padded with spaces to a 64-byte boundary
/// and a newline (as NumPy writes it), then `data`. `dict` need not be valid.
pub fn npy_with_header(dict: &str, data: &[u8]) -> Vec<u8> {
    let mut header = dict.as_bytes().to_vec();
    while !(header.len() + 11).is_multiple_of(64) {
        header.push(b' ');
    }
    header.push(b'\n');
    let mut entry = b"\x93NUMPY\x01\x00".to_vec();
    entry.extend(u16::try_from(header.len()).unwrap().to_le_bytes());
    entry.extend(header);
    entry.extend(data);
    entry
}

/// An `.npy` entry declaring element type `descr` and `shape`, then `data` (of any length).
pub fn npy(descr: &str, shape: &[u64], data: &[u8]) -> Vec<u8> {
    let dims: Vec<String> = shape.iter().map(u64::to_string).collect();
    let tuple = match dims.len() {
        1 => format!("({},)", dims[0]),
        _ => format!("({})", dims.join(", ")),
    };
    let dict = format!("{{'descr': '{descr}', 'fortran_order': False, 'shape': {tuple}, }}");
    npy_with_header(&dict, data)
}

/// A zip archive of `(name, bytes, deflated)` entries.
pub fn zip_of(entries: &[(&str, &[u8], bool)]) -> Vec<u8> {
    let mut zip = zip::ZipWriter::new(Cursor::new(Vec::new()));
    for &(name, bytes, deflated) in entries {
        let method = if deflated {
            zip::CompressionMethod::Deflated
        } else {
            zip::CompressionMethod::Stored
        };
        let options = zip::write::SimpleFileOptions::default().compression_method(method);
        zip.start_file(name, options).unwrap();
        zip.write_all(bytes).unwrap();
    }
    zip.finish().unwrap().into_inner()
}
