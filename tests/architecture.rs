//! The module graph of `src/` follows the data flow (docs/architecture.md):
//! each top-level module imports only the modules its row below allows, no
//! two files import each other in a circle, and no file or function grows
//! past the size a reader can hold at once.
//!
//! The rules are read from the code as text (`crate::` and `super::` paths
//! outside comments), which is all they need: Rust resolves every import
//! through one of those two prefixes or a child module's name.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// What each top-level module may import from the crate, bottom up (one
/// row a module, as in docs/architecture.md's table).
#[rustfmt::skip]
const ALLOWED: &[(&str, &[&str])] = &[
    ("sync", &[]),
    ("test_log", &["sync"]),
    ("version", &[]),
    ("cli", &["version"]),
    // The one import against the flow: the certificate is checked at load,
    // so a bad one is a config error naming the key.
    ("config", &["sync", "avepoint::certificate"]),
    ("avepoint", &["sync", "config"]),
    ("refresher", &["sync"]),
    ("discovery", &["sync", "config", "avepoint", "refresher"]),
    ("profile_details", &["sync", "config", "avepoint", "refresher", "discovery"]),
    ("backup", &["sync", "config", "avepoint", "refresher", "discovery"]),
    ("report_schedule", &["sync", "config", "avepoint", "refresher", "discovery", "profile_details"]),
    ("collect", &["sync", "config", "avepoint", "discovery", "report_schedule"]),
    ("metrics", &["sync", "version", "config", "avepoint", "discovery", "collect", "profile_details", "backup", "report_schedule"]),
    ("state", &["sync", "config", "avepoint", "refresher", "discovery", "collect", "profile_details", "backup", "report_schedule", "metrics"]),
    ("web_config", &["sync", "config"]),
    ("web", &["sync", "config", "avepoint", "discovery", "collect", "profile_details", "backup", "metrics", "state"]),
    ("serve", &["sync", "web_config"]),
    ("simulator", &["sync", "avepoint::model", "avepoint::certificate", "web_config", "serve"]),
    ("app", &["sync", "version", "cli", "config", "avepoint", "discovery", "collect", "profile_details", "backup", "metrics", "state", "web_config", "web", "serve", "simulator"]),
];

/// Longest file in `src/`, in lines.
const MAX_FILE_LINES: usize = 500;
/// Longest function in `src/`, in lines.
const MAX_FUNCTION_LINES: usize = 80;

fn src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

/// Every `.rs` file below `src/`, with its text.
fn sources() -> BTreeMap<PathBuf, String> {
    fn walk(dir: &Path, files: &mut BTreeMap<PathBuf, String>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                walk(&path, files);
            } else if path.extension().is_some_and(|e| e == "rs") {
                let text = std::fs::read_to_string(&path).unwrap();
                files.insert(path, text);
            }
        }
    }
    let mut files = BTreeMap::new();
    walk(&src(), &mut files);
    files
}

/// The code of a file without its comment lines and its unit tests (which
/// may import anything, and whose `super` is the file itself).
fn code(text: &str) -> String {
    let text = &text[..text.find("#[cfg(test)]").unwrap_or(text.len())];
    text.lines()
        .filter(|line| !line.trim_start().starts_with("//"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// The module path of a file: `src/avepoint/client.rs` is `["avepoint", "client"]`.
fn module_of(file: &Path) -> Vec<String> {
    let relative = file.strip_prefix(src()).unwrap().with_extension("");
    let mut parts: Vec<String> = relative
        .components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect();
    if matches!(
        parts.last().map(String::as_str),
        Some("mod" | "lib" | "main")
    ) {
        parts.pop();
    }
    parts
}

/// Every crate path a file names, absolute (`super::` resolved), as segments.
fn imports(file: &Path, text: &str) -> Vec<Vec<String>> {
    let module = module_of(file);
    let is_mod_file = file
        .file_stem()
        .is_some_and(|s| s == "mod" || s == "lib" || s == "main");
    // `super` of a mod.rs is its parent; of a leaf file, the folder's module.
    let parent: Vec<String> = if is_mod_file {
        module[..module.len().saturating_sub(1)].to_vec()
    } else {
        module[..module.len() - 1].to_vec()
    };
    let mut found = Vec::new();
    let code = code(text);
    for (prefix, base) in [("crate::", Vec::new()), ("super::", parent)] {
        let mut rest = code.as_str();
        while let Some(at) = rest.find(prefix) {
            let before = rest[..at].chars().last();
            rest = &rest[at + prefix.len()..];
            if before.is_some_and(|c| c.is_alphanumeric() || c == '_' || c == ':') {
                continue;
            }
            for tail in expand(rest) {
                let mut path = base.clone();
                path.extend(tail);
                found.push(path);
            }
        }
    }
    found
}

/// The paths at the start of `text` (after a `crate::`/`super::`): one for
/// `a::b::C`, one per item for `a::{b::C, D}` (one level of braces).
fn expand(text: &str) -> Vec<Vec<String>> {
    let mut segments = Vec::new();
    let mut rest = text;
    loop {
        let end = rest
            .find(|c: char| !(c.is_alphanumeric() || c == '_'))
            .unwrap_or(rest.len());
        if end == 0 {
            break;
        }
        segments.push(rest[..end].to_owned());
        rest = &rest[end..];
        match rest.strip_prefix("::") {
            Some(next) => rest = next,
            None => return vec![segments],
        }
    }
    if let Some(group) = rest.strip_prefix('{') {
        let group = &group[..group.find('}').unwrap_or(group.len())];
        return group
            .split(',')
            .filter_map(|item| {
                let first: String = item
                    .trim()
                    .chars()
                    .take_while(|c| c.is_alphanumeric() || *c == '_')
                    .collect();
                (!first.is_empty() && first != "self").then(|| {
                    let mut path = segments.clone();
                    path.push(first);
                    path
                })
            })
            .collect();
    }
    vec![segments]
}

/// The file a module path lives in: the longest prefix that is a file.
fn file_of(path: &[String], files: &BTreeMap<PathBuf, String>) -> Option<PathBuf> {
    (1..=path.len()).rev().find_map(|n| {
        let joined: PathBuf = path[..n].iter().collect();
        [
            src().join(&joined).with_extension("rs"),
            src().join(&joined).join("mod.rs"),
        ]
        .into_iter()
        .find(|candidate| files.contains_key(candidate))
    })
}

#[test]
fn top_level_modules_import_only_what_the_data_flow_allows() {
    let allowed: BTreeMap<&str, &[&str]> = ALLOWED.iter().copied().collect();
    let mut violations = Vec::new();
    for (file, text) in sources() {
        let module = module_of(&file);
        let Some(own) = module.first() else {
            continue; // lib.rs and main.rs declare and call; they own nothing.
        };
        let Some(rules) = allowed.get(own.as_str()) else {
            violations.push(format!(
                "{}: module `{own}` has no row in ALLOWED; add one (see docs/architecture.md)",
                file.display()
            ));
            continue;
        };
        for path in imports(&file, &text) {
            if path.first() == Some(own) {
                continue;
            }
            let named = path.join("::");
            let permitted = rules
                .iter()
                .any(|rule| named == *rule || named.starts_with(&format!("{rule}::")));
            if !permitted {
                violations.push(format!(
                    "{}: `{own}` imports `crate::{named}`; it may import only {rules:?}",
                    file.display()
                ));
            }
        }
    }
    assert!(violations.is_empty(), "{}", violations.join("\n"));
}

#[test]
fn no_two_files_import_each_other_in_a_circle() {
    let files = sources();
    let mut edges: BTreeMap<PathBuf, BTreeSet<PathBuf>> = BTreeMap::new();
    for (file, text) in &files {
        let targets = edges.entry(file.clone()).or_default();
        for path in imports(file, text) {
            if let Some(target) = file_of(&path, &files)
                && target != *file
            {
                targets.insert(target);
            }
        }
    }
    // Depth-first search; a grey node met again closes a circle.
    fn visit(
        node: &PathBuf,
        edges: &BTreeMap<PathBuf, BTreeSet<PathBuf>>,
        state: &mut BTreeMap<PathBuf, bool>,
        stack: &mut Vec<PathBuf>,
    ) -> Option<Vec<PathBuf>> {
        match state.get(node) {
            Some(true) => return None,
            Some(false) => {
                let start = stack.iter().position(|n| n == node).unwrap();
                return Some(stack[start..].to_vec());
            }
            None => {}
        }
        state.insert(node.clone(), false);
        stack.push(node.clone());
        for next in edges.get(node).into_iter().flatten() {
            if let Some(circle) = visit(next, edges, state, stack) {
                return Some(circle);
            }
        }
        stack.pop();
        state.insert(node.clone(), true);
        None
    }
    let mut state = BTreeMap::new();
    for node in edges.keys() {
        if let Some(circle) = visit(node, &edges, &mut state, &mut Vec::new()) {
            let names: Vec<String> = circle
                .iter()
                .map(|p| p.strip_prefix(src()).unwrap().display().to_string())
                .collect();
            panic!(
                "import circle: {} -> (back to the first)",
                names.join(" -> ")
            );
        }
    }
}

/// Whether `line` (trimmed) starts a function, whatever its visibility
/// and qualifiers: a list of heads missed `pub(super) async fn`.
fn function_head(line: &str) -> bool {
    let mut rest = line;
    if let Some(after) = rest.strip_prefix("pub") {
        rest = match after.strip_prefix('(') {
            Some(scope) => match scope.find(')') {
                Some(end) => &scope[end + 1..],
                None => return false,
            },
            None => after,
        }
        .trim_start();
    }
    for qualifier in ["const ", "async ", "unsafe ", "extern \"C\" "] {
        rest = rest.strip_prefix(qualifier).unwrap_or(rest);
    }
    rest.starts_with("fn ")
}

#[test]
fn files_and_functions_stay_readable() {
    let mut too_long = Vec::new();
    for (file, text) in sources() {
        let lines: Vec<&str> = text.lines().collect();
        if lines.len() > MAX_FILE_LINES {
            too_long.push(format!(
                "{}: {} lines (at most {MAX_FILE_LINES}): split it by concern",
                file.display(),
                lines.len()
            ));
        }
        for (start, line) in lines.iter().enumerate() {
            let trimmed = line.trim_start();
            let indent = &line[..line.len() - trimmed.len()];
            let is_fn = function_head(trimmed);
            if !is_fn || trimmed.ends_with(';') {
                continue;
            }
            let closing = format!("{indent}}}");
            if let Some(length) = lines[start..].iter().position(|l| *l == closing)
                && length + 1 > MAX_FUNCTION_LINES
            {
                too_long.push(format!(
                    "{}:{}: a function of {} lines (at most {MAX_FUNCTION_LINES})",
                    file.display(),
                    start + 1,
                    length + 1
                ));
            }
        }
    }
    assert!(too_long.is_empty(), "{}", too_long.join("\n"));
}

#[test]
fn every_file_has_its_row_in_the_architecture_doc() {
    // docs/architecture.md is the one tree of the source kept up to date
    // (the README's copy had drifted 15 files behind): a new file without
    // its row fails here, naming the file.
    let doc =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/architecture.md"))
            .unwrap();
    let missing: Vec<String> = sources()
        .keys()
        .map(|file| {
            let relative = file.strip_prefix(src()).unwrap();
            relative.to_string_lossy().replace('\\', "/")
        })
        .filter(|relative| !doc.contains(&format!("`{relative}`")))
        .collect();
    assert!(
        missing.is_empty(),
        "files under src/ without a row (`path` in backticks) in docs/architecture.md's \"Files\" section: {missing:?}"
    );
}

#[test]
fn the_rules_see_imports() {
    // The checks above pass vacuously if the path reader finds nothing.
    let files = sources();
    let client = src().join("avepoint/client.rs");
    let found = imports(&client, &files[&client]);
    assert!(
        found
            .iter()
            .any(|p| p.join("::") == "config::AvePointSettings")
    );
    assert!(
        found
            .iter()
            .any(|p| p.join("::") == "avepoint::token::TokenSource")
    );
    assert!(function_head("pub(super) async fn run(&self) {"));
    assert!(function_head("pub(in crate::a) const fn n() -> u8 {"));
    assert!(!function_head("pub struct Fn;"));
    assert_eq!(
        expand("a::{b::C, D, self}"),
        vec![vec!["a", "b"], vec!["a", "D"]]
    );
}
