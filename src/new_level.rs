//! `backprop new-level NAME`: copies the starter crate to `crates/NAME` for a learner to fill in.

use std::fs;
use std::path::{Path, PathBuf};

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
/// A name that is not a valid package name, a crate of that name already present, or a file
/// system error; each names the path or the name concerned.
pub fn new_level(root: &Path, name: &str) -> Result<PathBuf, RunError> {
    let valid = name.chars().next().is_some_and(|c| c.is_ascii_lowercase())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_');
    let target = root.join("crates").join(name);
    let output_error =
        |path: &Path, problem: String| RunError::from(OutputError::new(path, problem));
    if !valid {
        return Err(output_error(
            &target,
            format!(
                "{name:?} is not a usable crate name: use lowercase letters, digits, - and _, \
                 starting with a letter (e.g. my-level)"
            ),
        ));
    }
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
    copy_renamed(&template, &partial, name)
        .and_then(|()| fs::rename(&partial, &target))
        .map_err(|error| output_error(&target, error.to_string()))?;
    Ok(target)
}

/// Copies `from` to `to` recursively, replacing the starter's package and crate names in text.
fn copy_renamed(from: &Path, to: &Path, name: &str) -> std::io::Result<()> {
    fs::create_dir_all(to)?;
    for entry in fs::read_dir(from)? {
        let entry = entry?;
        let destination = to.join(entry.file_name());
        if entry.file_type()?.is_dir() {
            copy_renamed(&entry.path(), &destination, name)?;
        } else {
            let text = fs::read_to_string(entry.path())?
                .replace("level-starter", name)
                .replace("level_starter", &name.replace('-', "_"));
            fs::write(destination, text)?;
        }
    }
    Ok(())
}
