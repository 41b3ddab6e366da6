//! Opening files that may be anything: a path a user passes (data, a model, a run's
//! `config.json` or `.lock`) can name a FIFO, a socket or a device, and opening a FIFO blocks
//! until another process opens its other end. Every reader of the project opens through
//! [`open_regular`], which looks at what the path is (following links) before opening it, and
//! refuses anything but a regular file.
//!
//! ```
//! use backprop_data::files::open_regular;
//!
//! // A folder is not a regular file either: refused with a message naming what it is.
//! let error = open_regular(std::env::temp_dir().as_path()).unwrap_err();
//! assert_eq!(error.kind(), std::io::ErrorKind::InvalidInput);
//! assert!(error.to_string().contains("a folder"));
//! ```

use std::fs::{self, File, FileType};
use std::io;
use std::path::Path;

/// Opens `path` for reading when it is a regular file (after following symbolic links).
///
/// # Errors
/// `NotFound` when nothing is there; `InvalidInput`, naming what it is, for a folder, a FIFO, a
/// socket or a device, without opening it (so without blocking); any other error of
/// [`fs::metadata`] or [`File::open`].
pub fn open_regular(path: &Path) -> io::Result<File> {
    check_regular(path)?;
    File::open(path)
}

/// `Ok` when `path` is a regular file (after following symbolic links), and `Ok` when nothing is
/// there yet if `missing_is_fine`; otherwise the error [`open_regular`] would give.
///
/// # Errors
/// As [`open_regular`].
pub fn check_regular_or_missing(path: &Path, missing_is_fine: bool) -> io::Result<()> {
    match fs::metadata(path) {
        Err(error) if missing_is_fine && error.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(error) => Err(error),
        Ok(metadata) if metadata.is_file() => Ok(()),
        Ok(metadata) => Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!(
                "is {}, not a regular file (reading it could block or never end)",
                kind_of(&metadata.file_type())
            ),
        )),
    }
}

/// [`check_regular_or_missing`] with nothing there an error.
///
/// # Errors
/// As [`open_regular`].
pub fn check_regular(path: &Path) -> io::Result<()> {
    check_regular_or_missing(path, false)
}

/// What a file that is not regular is, in words.
pub fn kind_of(file_type: &FileType) -> &'static str {
    #[cfg(unix)]
    {
        use std::os::unix::fs::FileTypeExt;
        if file_type.is_fifo() {
            return "a FIFO (named pipe)";
        }
        if file_type.is_socket() {
            return "a socket";
        }
        if file_type.is_block_device() || file_type.is_char_device() {
            return "a device";
        }
    }
    if file_type.is_dir() {
        "a folder"
    } else if file_type.is_symlink() {
        "a symbolic link"
    } else if file_type.is_file() {
        "a regular file"
    } else {
        "a special file"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_regular_file_opens_and_a_missing_one_is_not_found() {
        let dir = std::env::temp_dir().join(format!("backprop-files-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        let file = dir.join("plain");
        fs::write(&file, b"x").unwrap();
        assert!(open_regular(&file).is_ok());
        let missing = dir.join("missing");
        assert_eq!(
            open_regular(&missing).unwrap_err().kind(),
            io::ErrorKind::NotFound
        );
        assert!(check_regular_or_missing(&missing, true).is_ok());
        fs::remove_dir_all(&dir).unwrap();
    }

    #[cfg(unix)]
    #[test]
    fn a_device_is_refused_without_being_opened() {
        // /dev/zero would never end; the check refuses it before any read.
        let error = open_regular(Path::new("/dev/zero")).unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::InvalidInput);
        assert!(error.to_string().contains("a device"), "{error}");
    }
}
