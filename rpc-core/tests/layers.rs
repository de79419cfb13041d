//! rpc-core's layering, checked from its source: every top-level module imports only the
//! modules below it, so there is no import cycle between top-level modules.
//!
//! References are read as text (`crate::module::…`, `crate::{module, …}`, and names the crate
//! root re-exports, such as `crate::RpcError`). Test-only code at the bottom of a file (from
//! its first `#[cfg(test)]` on) is left out: tests may reach across layers.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};

/// The layers, bottom first. A module may import modules of its own or a lower layer.
const LAYERS: &[&[&str]] = &[
    &["protocol", "backoff", "defaults"],
    &["registry", "documents"],
    &["error", "service", "metric_handles"],
    &["call"],
    &["transport"],
    &["cluster"],
    &["client", "server"],
    &["admin"],
    &["config"],
];

fn src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

/// The top-level modules `lib.rs` declares.
fn modules(lib: &str) -> BTreeSet<String> {
    lib.lines()
        .filter_map(|line| {
            let line = line.trim();
            let rest = line
                .strip_prefix("pub mod ")
                .or_else(|| line.strip_prefix("mod "))
                .or_else(|| line.strip_prefix("pub(crate) mod "))?;
            rest.strip_suffix(';').map(str::to_string)
        })
        .collect()
}

/// Names the crate root re-exports, with the module each comes from.
fn root_exports(lib: &str, modules: &BTreeSet<String>) -> BTreeMap<String, String> {
    let mut exports = BTreeMap::new();
    for statement in lib.split(';') {
        let Some(start) = statement.find("pub use ") else {
            continue;
        };
        let path = &statement[start + "pub use ".len()..];
        let Some(module) = path.split("::").next().map(str::trim) else {
            continue;
        };
        if !modules.contains(module) {
            continue;
        }
        let names = path[module.len()..].replace(['{', '}', ':', ','], " ");
        for name in names.split_whitespace() {
            exports.insert(name.to_string(), module.to_string());
        }
    }
    exports
}

/// The source files of a top-level module: `src/m.rs` and everything under `src/m/`.
fn files_of(module: &str) -> Vec<PathBuf> {
    let mut files = Vec::new();
    let single = src().join(format!("{module}.rs"));
    if single.exists() {
        files.push(single);
    }
    let mut dirs = vec![src().join(module)];
    while let Some(dir) = dirs.pop() {
        let Ok(entries) = fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                dirs.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                files.push(path);
            }
        }
    }
    files
}

/// The code of a file without comments and without its trailing test module.
fn code(text: &str) -> String {
    let text = match text.find("#[cfg(test)]") {
        Some(at) => &text[..at],
        None => text,
    };
    text.lines()
        .map(|line| match line.find("//") {
            Some(at) => &line[..at],
            None => line,
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// The top-level modules that `text` refers to through `crate::`.
fn references(
    text: &str,
    modules: &BTreeSet<String>,
    exports: &BTreeMap<String, String>,
) -> BTreeSet<String> {
    let ident = |s: &str| -> String {
        s.chars()
            .take_while(|c| c.is_alphanumeric() || *c == '_')
            .collect()
    };
    let mut found = BTreeSet::new();
    let mut note = |name: &str| {
        if modules.contains(name) {
            found.insert(name.to_string());
        } else if let Some(module) = exports.get(name) {
            found.insert(module.clone());
        }
    };
    for (at, _) in text.match_indices("crate::") {
        let rest = &text[at + "crate::".len()..];
        if let Some(group) = rest.strip_prefix('{') {
            let end = group.find('}').unwrap_or(group.len());
            for item in group[..end].split(',') {
                note(&ident(item.trim()));
            }
        } else {
            note(&ident(rest));
        }
    }
    found
}

fn graph() -> BTreeMap<String, BTreeSet<String>> {
    let lib = fs::read_to_string(src().join("lib.rs")).expect("read lib.rs");
    let modules = modules(&lib);
    let exports = root_exports(&lib, &modules);
    let mut graph = BTreeMap::new();
    for module in &modules {
        let mut uses = BTreeSet::new();
        for file in files_of(module) {
            let text = fs::read_to_string(&file).expect("read source");
            uses.extend(references(&code(&text), &modules, &exports));
        }
        uses.remove(module);
        graph.insert(module.clone(), uses);
    }
    graph
}

/// A cycle through `module`, if there is one, as the path that closes it.
fn cycle_from(graph: &BTreeMap<String, BTreeSet<String>>, start: &str) -> Option<Vec<String>> {
    let mut stack = vec![(start.to_string(), vec![start.to_string()])];
    let mut seen = BTreeSet::new();
    while let Some((node, path)) = stack.pop() {
        for next in graph.get(&node).into_iter().flatten() {
            if next == start {
                let mut cycle = path.clone();
                cycle.push(next.clone());
                return Some(cycle);
            }
            if seen.insert(next.clone()) {
                let mut longer = path.clone();
                longer.push(next.clone());
                stack.push((next.clone(), longer));
            }
        }
    }
    None
}

#[test]
fn no_import_cycle_between_top_level_modules() {
    let graph = graph();
    assert!(graph.contains_key("client") && graph.contains_key("cluster"));
    for module in graph.keys() {
        if let Some(cycle) = cycle_from(&graph, module) {
            panic!("import cycle in rpc-core: {}", cycle.join(" -> "));
        }
    }
}

#[test]
fn every_module_imports_only_from_its_layer_or_below() {
    let rank = |module: &str| LAYERS.iter().position(|layer| layer.contains(&module));
    let graph = graph();
    for (module, uses) in &graph {
        let Some(own) = rank(module) else {
            panic!("module {module} is in no layer of tests/layers.rs; place it");
        };
        for used in uses {
            let theirs = rank(used).unwrap_or(usize::MAX);
            assert!(
                theirs <= own,
                "{module} (layer {own}) imports {used} (layer {theirs}), a layer above it"
            );
        }
    }
}

#[test]
fn the_checker_sees_a_planted_cycle() {
    let modules: BTreeSet<String> = ["a", "b"].map(String::from).into();
    let exports = BTreeMap::from([("Thing".to_string(), "b".to_string())]);
    let uses = references("use crate::{a::X, Thing};", &modules, &exports);
    assert_eq!(
        uses, modules,
        "grouped imports and root re-exports are both seen"
    );
    let graph = BTreeMap::from([
        ("a".to_string(), BTreeSet::from(["b".to_string()])),
        ("b".to_string(), BTreeSet::from(["a".to_string()])),
    ]);
    assert!(cycle_from(&graph, "a").is_some());
}
