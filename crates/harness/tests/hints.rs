//! Every check the suite stamps has a hint file, and every hint file the harness, the
//! diagnosis messages or the starter crate mentions exists and says something.

use std::fs;
use std::path::Path;

use backprop_harness::diagnosis::hint_for;

const ROOT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../..");

/// `group::check` for every check in the `suite!` macro (read from its source).
fn stamped_checks() -> Vec<String> {
    let source = fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/src/lib.rs")).unwrap();
    let mut checks = Vec::new();
    let mut group = String::new();
    for line in source.lines().map(str::trim) {
        if let Some(rest) = line
            .strip_prefix("mod ")
            .and_then(|rest| rest.strip_suffix(" {"))
        {
            group = rest.to_string();
        } else if !group.is_empty()
            && line.ends_with(',')
            && line[..line.len() - 1]
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
        {
            checks.push(format!("{group}::{}", &line[..line.len() - 1]));
        }
    }
    checks
}

fn assert_hint_file(path: &str, why: &str) {
    let text = fs::read_to_string(Path::new(ROOT).join(path))
        .unwrap_or_else(|error| panic!("{why}: {path}: {error}"));
    assert!(text.trim().len() > 200, "{why}: {path} is (nearly) empty");
}

#[test]
fn every_check_group_has_a_non_empty_hint_file() {
    let checks = stamped_checks();
    // Every group the suite! macro stamps, and each group's checks point to its own page.
    let groups = [
        ("basic", "hints/basic.md"),
        ("edge", "hints/edge.md"),
        ("norm", "hints/hint-4-normalization.md"),
        ("conv", "hints/hint-5-convolution.md"),
        ("stress", "hints/stress.md"),
    ];
    for (group, page) in groups {
        let members: Vec<&String> = checks
            .iter()
            .filter(|check| check.starts_with(&format!("{group}::")))
            .collect();
        assert!(
            members.len() >= 5,
            "{group}:: has {} checks in the suite! macro: {checks:?}",
            members.len()
        );
        for check in members {
            let hint = hint_for(check);
            let own_page = hint == page || (group == "basic" && hint.starts_with("hints/"));
            assert!(
                own_page && hint != "hints/README.md",
                "{check} reads {hint}"
            );
        }
    }
    let grouped = |check: &&String| {
        groups
            .iter()
            .any(|(g, _)| check.starts_with(&format!("{g}::")))
    };
    assert!(checks.iter().all(|check| grouped(&check)), "{checks:?}");
    assert!(checks.len() > 50, "{checks:?}");
    for check in &checks {
        assert_hint_file(hint_for(check), check);
    }
}

#[test]
fn every_hint_the_code_mentions_exists() {
    let mut sources = vec![
        Path::new(ROOT).join("crates/harness/src/diagnosis.rs"),
        Path::new(ROOT).join("crates/harness/src/expect.rs"),
    ];
    for entry in fs::read_dir(Path::new(ROOT).join("templates/level-starter/src")).unwrap() {
        sources.push(entry.unwrap().path());
    }
    let mut mentioned = 0;
    for source in sources {
        let text = fs::read_to_string(&source).unwrap();
        for piece in text.split("hints/").skip(1) {
            let name: String = piece
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '.')
                .collect();
            let name = name.trim_end_matches('.');
            if name.ends_with(".md") {
                assert_hint_file(&format!("hints/{name}"), &source.display().to_string());
                mentioned += 1;
            }
        }
    }
    assert!(mentioned > 10, "only {mentioned} hint mentions found");
}
