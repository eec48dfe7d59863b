//! The crate's shape, checked: its modules depend one way (no two siblings import each other,
//! directly or round a loop), and no model runtime links into it.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Every `.rs` file under `dir`, as module paths (`call/session.rs` → `["call", "session"]`).
fn modules(root: &Path, dir: &Path, out: &mut Vec<(Vec<String>, PathBuf)>) {
    for entry in std::fs::read_dir(dir).expect("the source folder") {
        let path = entry.expect("an entry").path();
        if path.is_dir() {
            modules(root, &path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            let rel = path.strip_prefix(root).expect("under the root");
            let mut parts: Vec<String> = rel
                .iter()
                .map(|p| p.to_string_lossy().trim_end_matches(".rs").to_string())
                .collect();
            if parts.last().is_some_and(|p| p == "mod" || p == "lib") {
                parts.pop();
            }
            out.push((parts, path));
        }
    }
}

/// The module paths a file names: `crate::a::b…`, and `super::x` resolved against its own.
/// Its tests (after `#[cfg(test)]`) are left out: they may reach anywhere.
fn references(module: &[String], text: &str) -> Vec<Vec<String>> {
    let mut out = Vec::new();
    // What `super` names: the parent of the file's module (`a/mod.rs` is module `a`,
    // `a/b.rs` is module `a::b`; either way, drop the last segment).
    let parent = &module[..module.len().saturating_sub(1)];
    let code = text.split("#[cfg(test)]").next().unwrap_or(text);
    // Line comments out (doc links name modules too), whitespace squeezed so a `use` spread
    // over lines reads as one.
    let code: String = code
        .lines()
        .map(|l| l.split("//").next().unwrap_or(""))
        .collect::<Vec<_>>()
        .join(" ")
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ");
    for (start, _) in code.match_indices("crate::") {
        out.extend(path_at(&code[start + "crate::".len()..]).into_iter().filter(|p| !p.is_empty()));
    }
    for (start, _) in code.match_indices("super::") {
        for tail in path_at(&code[start + "super::".len()..]) {
            out.push(parent.iter().cloned().chain(tail).collect());
        }
    }
    out
}

/// The module paths at the start of `text` (`a::b::Type` → `a::b`), a `{…}` list expanded
/// (`a::{b, c::D}` → `a::b`, `a::c`): lowercase segments, up to the first that is anything else.
fn path_at(text: &str) -> Vec<Vec<String>> {
    let mut path = Vec::new();
    let mut rest = text;
    loop {
        let ident: String = rest
            .chars()
            .take_while(|c| c.is_ascii_lowercase() || *c == '_' || c.is_ascii_digit())
            .collect();
        if ident.is_empty() {
            if let Some(list) = rest.strip_prefix('{') {
                let inner = &list[..closing(list)];
                return split_top(inner)
                    .into_iter()
                    .flat_map(|item| path_at(item.trim()))
                    .map(|tail| path.iter().cloned().chain(tail).collect())
                    .collect();
            }
            break;
        }
        rest = &rest[ident.len()..];
        path.push(ident);
        match rest.strip_prefix("::") {
            Some(after) => rest = after,
            None => break,
        }
    }
    vec![path]
}

/// Where the `{…}` list starting just before `text` closes.
fn closing(text: &str) -> usize {
    let mut depth = 1;
    for (i, c) in text.char_indices() {
        match c {
            '{' => depth += 1,
            '}' => {
                depth -= 1;
                if depth == 0 {
                    return i;
                }
            }
            _ => {}
        }
    }
    text.len()
}

/// The items of a `{…}` list, split at its own commas.
fn split_top(text: &str) -> Vec<&str> {
    let (mut items, mut depth, mut start) = (Vec::new(), 0, 0);
    for (i, c) in text.char_indices() {
        match c {
            '{' => depth += 1,
            '}' => depth -= 1,
            ',' if depth == 0 => {
                items.push(&text[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    items.push(&text[start..]);
    items
}

/// Cycles among the children of each module: `(parent, one cycle)`.
fn sibling_cycles() -> Vec<(String, Vec<String>)> {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    modules(&root, &root, &mut files);
    let known: BTreeSet<Vec<String>> = files.iter().map(|(m, _)| m.clone()).collect();
    // For every parent, edges between its children.
    let mut graphs: BTreeMap<Vec<String>, BTreeMap<String, BTreeSet<String>>> = BTreeMap::new();
    for (module, path) in &files {
        if path.to_string_lossy().ends_with("_tests.rs") {
            continue; // test modules may reach anywhere
        }
        let text = std::fs::read_to_string(path).expect("a source file");
        for target in references(module, &text) {
            // The deepest known module the reference names.
            let target: Vec<String> = (1..=target.len())
                .rev()
                .map(|n| target[..n].to_vec())
                .find(|p| known.contains(p))
                .unwrap_or_default();
            // The closest common ancestor, and the two children of it on each side.
            let common = module.iter().zip(&target).take_while(|(a, b)| a == b).count();
            if common >= module.len() || common >= target.len() {
                continue; // a module and its own descendant or ancestor
            }
            let parent = module[..common].to_vec();
            let (from, to) = (module[common].clone(), target[common].clone());
            graphs.entry(parent).or_default().entry(from).or_default().insert(to);
        }
    }
    let mut cycles = Vec::new();
    for (parent, graph) in &graphs {
        if let Some(cycle) = find_cycle(graph) {
            cycles.push((parent.join("::"), cycle));
        }
    }
    cycles
}

fn find_cycle(graph: &BTreeMap<String, BTreeSet<String>>) -> Option<Vec<String>> {
    fn visit(
        node: &str,
        graph: &BTreeMap<String, BTreeSet<String>>,
        stack: &mut Vec<String>,
        done: &mut BTreeSet<String>,
    ) -> Option<Vec<String>> {
        if let Some(at) = stack.iter().position(|n| n == node) {
            let mut cycle = stack[at..].to_vec();
            cycle.push(node.to_string());
            return Some(cycle);
        }
        if done.contains(node) {
            return None;
        }
        stack.push(node.to_string());
        for next in graph.get(node).into_iter().flatten() {
            if let Some(cycle) = visit(next, graph, stack, done) {
                return Some(cycle);
            }
        }
        stack.pop();
        done.insert(node.to_string());
        None
    }
    let mut done = BTreeSet::new();
    graph.keys().find_map(|n| visit(n, graph, &mut Vec::new(), &mut done))
}

#[test]
fn no_two_sibling_modules_depend_on_each_other() {
    let cycles = sibling_cycles();
    assert!(
        cycles.is_empty(),
        "import cycles (parent: a → … → a):\n{}",
        cycles
            .iter()
            .map(|(parent, c)| format!(
                "  {}: {}",
                if parent.is_empty() { "crate" } else { parent },
                c.join(" → ")
            ))
            .collect::<Vec<_>>()
            .join("\n")
    );
}

#[test]
fn the_cycle_check_finds_a_loop_between_siblings() {
    let graph: BTreeMap<String, BTreeSet<String>> = [
        ("a".to_string(), BTreeSet::from(["b".to_string()])),
        ("b".to_string(), BTreeSet::from(["c".to_string()])),
        ("c".to_string(), BTreeSet::from(["a".to_string()])),
    ]
    .into_iter()
    .collect();
    assert_eq!(find_cycle(&graph), Some(vec!["a".into(), "b".into(), "c".into(), "a".into()]));
    let refs = references(
        &["call".into(), "task".into()],
        "use super::session::X;\nuse crate::observe::live::LiveEvent;\nuse super::{media, task::Y};",
    );
    let expected = [["observe", "live"], ["call", "session"], ["call", "media"], ["call", "task"]];
    assert_eq!(refs, expected);
}

#[test]
fn no_model_runtime_links_into_this_crate() {
    let out = std::process::Command::new(env!("CARGO"))
        .args(["tree", "-p", "hermes-io", "-e", "normal", "--prefix", "none", "--all-features"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("cargo tree runs");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let tree = String::from_utf8_lossy(&out.stdout);
    assert!(tree.contains("hermes-core"), "the tree was read: {tree}");
    let runtimes: Vec<&str> = tree
        .lines()
        .filter(|l| ["tract", "ort", "espeak", "hermes-models"].iter().any(|r| l.starts_with(r)))
        .collect();
    assert!(runtimes.is_empty(), "model runtimes linked into hermes-io: {runtimes:?}");
}
