//! `backprop new-level NAME`: copies the starter crate to `crates/NAME` for a learner to fill in.

use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};

use backprop_data::files::open_regular;

use crate::error::RunError;
use crate::output::OutputError;

/// Where the starter crate lives, relative to the workspace root.
pub const TEMPLATE: &str = "templates/level-starter";

/// Copies `templates/level-starter` under `root` to `root/crates/name`, renames the package to
/// `name` (and the crate path in its test to `name` with `-` as `_`), and returns the new folder.
///
/// The copy is made in a temporary folder beside the target and renamed into place, so a failure
/// leaves no half-made crate.
///
/// # Errors
/// A name that is not a valid package name ([`check_package_name`]) or is taken by a package
/// of the workspace or its `Cargo.lock`, a crate folder of that name already present, or a file
/// system error; each names the path or the name concerned.
pub fn new_level(root: &Path, name: &str) -> Result<PathBuf, RunError> {
    check_package_name(name)?;
    let taken = workspace_packages(root)
        .into_iter()
        .chain(locked_packages(root))
        .any(|package| package.replace('_', "-") == name.replace('_', "-"));
    if taken {
        return Err(RunError::Argument(format!(
            "{name:?}: a package of that name is already in this workspace or its dependencies \
             (Cargo.lock); pick another name, e.g. my-level"
        )));
    }
    let target = root.join("crates").join(name);
    let output_error =
        |path: &Path, problem: String| RunError::from(OutputError::new(path, problem));
    if target.exists() {
        return Err(output_error(
            &target,
            "already exists: pick another name or remove it".into(),
        ));
    }
    let template = root.join(TEMPLATE);
    if !template.join("Cargo.toml").is_file() {
        return Err(output_error(
            &template,
            "the starter crate is missing (run from the workspace root, or pass --root)".into(),
        ));
    }
    let partial = root.join("crates").join(format!(".{name}.partial"));
    let _ = fs::remove_dir_all(&partial);
    let copied = copy_renamed(&template, &partial, name)
        .and_then(|()| fs::rename(&partial, &target).map_err(|error| (target.clone(), error)));
    if let Err((path, error)) = copied {
        // Nothing half-made stays behind.
        let _ = fs::remove_dir_all(&partial);
        return Err(output_error(&path, error.to_string()));
    }
    Ok(target)
}

/// Rust's strict and reserved keywords and the crates every crate sees: none can name a level
/// crate (its library would be `fn` or `std`).
const RESERVED_NAMES: [&str; 56] = [
    "as",
    "async",
    "await",
    "break",
    "const",
    "continue",
    "crate",
    "dyn",
    "else",
    "enum",
    "extern",
    "false",
    "fn",
    "for",
    "if",
    "impl",
    "in",
    "let",
    "loop",
    "match",
    "mod",
    "move",
    "mut",
    "pub",
    "ref",
    "return",
    "self",
    "static",
    "struct",
    "super",
    "trait",
    "true",
    "type",
    "unsafe",
    "use",
    "where",
    "while",
    "abstract",
    "become",
    "box",
    "do",
    "final",
    "gen",
    "macro",
    "override",
    "priv",
    "try",
    "typeof",
    "unsized",
    "virtual",
    "yield",
    "std",
    "core",
    "alloc",
    "test",
    "proc_macro",
];

/// Checks that `name` can name a level crate: lowercase letters, digits, `-` and `_`, starting
/// with a letter, and not a Rust keyword or a built-in crate.
///
/// # Errors
/// [`RunError::Argument`] saying which rule `name` breaks.
pub fn check_package_name(name: &str) -> Result<(), RunError> {
    let valid = name.chars().next().is_some_and(|c| c.is_ascii_lowercase())
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_');
    if !valid {
        return Err(RunError::Argument(format!(
            "{name:?} is not a usable crate name: use up to 64 lowercase letters, digits, - and \
             _, starting with a letter (e.g. my-level)"
        )));
    }
    if RESERVED_NAMES.contains(&name.replace('-', "_").as_str()) {
        return Err(RunError::Argument(format!(
            "{name:?} is a Rust keyword or a built-in crate, so its library could not be named; \
             pick another name, e.g. my-level"
        )));
    }
    Ok(())
}

/// The packages of the workspace at `root`: the root package and those of `crates/*`.
pub fn workspace_packages(root: &Path) -> Vec<String> {
    workspace_package_dirs(root)
        .into_iter()
        .map(|(name, _)| name)
        .collect()
}

/// The packages of the workspace at `root` with their folders: the root package and each
/// `crates/*` folder with a manifest.
pub fn workspace_package_dirs(root: &Path) -> Vec<(String, PathBuf)> {
    let crates = fs::read_dir(root.join("crates"))
        .into_iter()
        .flatten()
        .flatten()
        .map(|entry| entry.path());
    std::iter::once(root.to_path_buf())
        .chain(crates)
        .filter_map(|dir| {
            let name = package_name(&fs::read_to_string(dir.join("Cargo.toml")).ok()?)?;
            Some((name, dir))
        })
        .collect()
}

/// The `name` of a manifest's `[package]` table (`None` for a virtual manifest, or a file that
/// is not TOML).
fn package_name(manifest: &str) -> Option<String> {
    let manifest = manifest.parse::<toml_edit::Document<String>>().ok()?;
    let name = manifest.get("package")?.get("name")?.as_str()?;
    Some(name.to_string())
}

/// Every package `Cargo.lock` names (dependencies included): the `name` of each
/// `[[package]]`. Nothing when there is no lock file, or it is not TOML.
fn locked_packages(root: &Path) -> Vec<String> {
    let Some(lock) = fs::read_to_string(root.join("Cargo.lock"))
        .ok()
        .and_then(|text| text.parse::<toml_edit::Document<String>>().ok())
    else {
        return Vec::new();
    };
    lock.get("package")
        .and_then(|packages| packages.as_array_of_tables())
        .into_iter()
        .flatten()
        .filter_map(|package| Some(package.get("name")?.as_str()?.to_string()))
        .collect()
}

/// Copies `from` to `to` recursively, replacing the starter's package and crate names in text.
/// Only folders and regular files are copied: anything else (a FIFO would block the read) is
/// an error naming it.
///
/// # Errors
/// The path that could not be read or written, and why.
fn copy_renamed(from: &Path, to: &Path, name: &str) -> Result<(), (PathBuf, std::io::Error)> {
    let at = |path: &Path| {
        let path = path.to_path_buf();
        move |error| (path, error)
    };
    fs::create_dir_all(to).map_err(at(to))?;
    for entry in fs::read_dir(from).map_err(at(from))? {
        let source = entry.map_err(at(from))?.path();
        let destination = to.join(source.file_name().unwrap_or_default());
        if fs::metadata(&source).map_err(at(&source))?.is_dir() {
            copy_renamed(&source, &destination, name)?;
        } else {
            let mut text = String::new();
            open_regular(&source)
                .and_then(|mut file| file.read_to_string(&mut text))
                .map_err(at(&source))?;
            let text = text
                .replace("level-starter", name)
                .replace("level_starter", &name.replace('-', "_"));
            fs::write(&destination, text).map_err(at(&destination))?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// TOML as TOML: single quotes, a `name` in another table first, a virtual manifest.
    #[test]
    fn manifests_and_the_lock_file_are_read_as_toml() {
        let manifest =
            "[lib]\nname = \"not_it\"\n\n[package]\nversion = \"0.1.0\"\nname = 'my-level'\n";
        assert_eq!(package_name(manifest).as_deref(), Some("my-level"));
        assert_eq!(
            package_name("[workspace]\nmembers = [\"crates/*\"]\n"),
            None
        );
        assert_eq!(package_name("[package\nname = \"broken\""), None);
        let root = tempfile::Builder::new()
            .prefix("backprop-lock-")
            .tempdir()
            .unwrap();
        let lock = "version = 4\n\n[[package]]\nname = \"ndarray\"\nversion = \"0.17.2\"\n\n\
                    [[package]]\nversion = \"1.0.0\"\nname = \"rand\"\n";
        fs::write(root.path().join("Cargo.lock"), lock).unwrap();
        assert_eq!(locked_packages(root.path()), ["ndarray", "rand"]);
    }
}
