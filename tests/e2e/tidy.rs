//! Tidy checks over the source tree (rust-analyzer's `tidy.rs` idea): rules
//! that are cheap to check mechanically and easy to forget.

use std::{
    collections::BTreeSet,
    fs,
    path::{Path, PathBuf},
};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("tests/ is inside the workspace").to_owned()
}

fn files(dir: &Path, extensions: &[&str], out: &mut Vec<PathBuf>) {
    let Ok(entries) = fs::read_dir(dir) else { return };
    for entry in entries.flatten() {
        let path = entry.path();
        let name = entry.file_name();
        if path.is_dir() {
            if name != "target" && !name.to_string_lossy().starts_with('.') {
                files(&path, extensions, out);
            }
        } else if path.extension().is_some_and(|e| extensions.iter().any(|x| e == *x)) {
            out.push(path);
        }
    }
}

fn sources(extensions: &[&str]) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for dir in ["crates", "tests"] {
        files(&root().join(dir), extensions, &mut out);
    }
    out.sort();
    out
}

fn read(path: &Path) -> String {
    fs::read_to_string(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
}

/// Every Rust file opens with a `//!` comment saying what it is for.
#[test]
fn every_rust_file_has_module_docs() {
    let missing: Vec<_> =
        sources(&["rs"]).into_iter().filter(|p| !read(p).starts_with("//!")).map(|p| p.display().to_string()).collect();
    assert!(missing.is_empty(), "files without a leading `//!` comment: {missing:#?}");
}

/// No test is ignored or expected to panic: every test runs and asserts.
#[test]
fn no_ignored_or_should_panic_tests() {
    let banned = [concat!("#[", "ignore"), concat!("#[", "should_panic")];
    let offenders: Vec<_> = sources(&["rs"])
        .into_iter()
        .filter(|p| banned.iter().any(|b| read(p).contains(b)))
        .map(|p| p.display().to_string())
        .collect();
    assert!(offenders.is_empty(), "ignored or should_panic tests in: {offenders:#?}");
}

/// No trailing whitespace in code, SQL, manifests or docs.
#[test]
fn no_trailing_whitespace() {
    let mut paths = sources(&["rs", "sql", "toml"]);
    for doc in ["README.md", "ARCHITECTURE.md", "Cargo.toml", ".ci/run"] {
        paths.push(root().join(doc));
    }
    let mut offenders = Vec::new();
    for path in paths {
        for (i, line) in read(&path).lines().enumerate() {
            if line.ends_with(' ') || line.ends_with('\t') {
                offenders.push(format!("{}:{}", path.display(), i + 1));
            }
        }
    }
    assert!(offenders.is_empty(), "trailing whitespace at: {offenders:#?}");
}

/// Every `HOOKLINE_*` variable the code reads is documented in the README.
#[test]
fn every_variable_is_in_the_readme() {
    let readme = read(&root().join("README.md"));
    let mut names = BTreeSet::new();
    // Only code that ships: unit-test modules and test crates use made-up names.
    let shipped = sources(&["rs"]).into_iter().filter(|p| {
        let p = p.to_string_lossy();
        !p.ends_with("/tests.rs") && !p.contains("/tests/") && !p.contains("hookline-testkit")
    });
    for path in shipped {
        let text = read(&path);
        let text = text.split("#[cfg(test)]").next().unwrap_or_default();
        let mut rest = text;
        while let Some(at) = rest.find("HOOKLINE_") {
            let tail = &rest[at..];
            let end =
                tail.find(|c: char| !(c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_')).unwrap_or(tail.len());
            let name = tail[..end].trim_end_matches('_');
            if name.len() > "HOOKLINE_".len() {
                names.insert(name.to_owned());
            }
            rest = &tail[end..];
        }
    }
    assert!(!names.is_empty(), "the scan found no variables at all");
    let missing: Vec<_> = names.iter().filter(|n| !readme.contains(&format!("`{n}`"))).collect();
    assert!(missing.is_empty(), "variables missing from the README's configuration table: {missing:?}");
}

/// Migrations are numbered without gaps, and merged ones never change: each
/// is listed with its SHA-256 in `migrations/CHECKSUMS`.
#[test]
fn migrations_are_numbered_and_unchanged() {
    use sha2::{Digest, Sha256};
    let dir = root().join("crates/hookline-store/migrations");
    let mut names: Vec<String> = fs::read_dir(&dir)
        .expect("migrations dir")
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".sql"))
        .collect();
    names.sort();
    for (i, name) in names.iter().enumerate() {
        let expected = format!("V{:04}__", i + 1);
        assert!(name.starts_with(&expected), "migration {name} should start with {expected}");
    }
    let listed = read(&dir.join("CHECKSUMS"));
    for name in &names {
        let hex: String =
            Sha256::digest(fs::read(dir.join(name)).expect("read")).iter().map(|b| format!("{b:02x}")).collect();
        let line = format!("{hex}  {name}");
        assert!(
            listed.lines().any(|l| l == line),
            "{name} is new or was edited: merged migrations never change; new ones add `{line}` to CHECKSUMS"
        );
    }
    assert_eq!(listed.lines().count(), names.len(), "CHECKSUMS lists a migration that does not exist");
}

/// Every crate takes its dependency versions from the workspace.
#[test]
fn dependencies_come_from_the_workspace() {
    let mut manifests = Vec::new();
    files(&root().join("crates"), &["toml"], &mut manifests);
    manifests.push(root().join("tests/Cargo.toml"));
    let mut offenders = Vec::new();
    for path in manifests.iter().filter(|p| p.ends_with("Cargo.toml")) {
        let mut in_deps = false;
        for line in read(path).lines() {
            let line = line.trim();
            if line.starts_with('[') {
                in_deps = line.ends_with("dependencies]");
            } else if in_deps && !line.is_empty() && !line.starts_with('#') && !line.contains("workspace = true") {
                offenders.push(format!("{}: {line}", path.display()));
            }
        }
    }
    assert!(offenders.is_empty(), "dependencies not taken from [workspace.dependencies]: {offenders:#?}");
}
