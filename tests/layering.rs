//! The module walls of ARCHITECTURE.md, checked against the code: its "Layers" table
//! lists, per top-level module, exactly the crate modules it imports; an import the table
//! does not list (say `mcp` reaching into `cli`, or the tunnel into `store`) fails here,
//! and so does a table row that no longer matches the code. No source file may grow past
//! 900 lines either, and no Rust file under `tests/`.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The top-level module a file under `src/` belongs to (`src/lib.rs` and `main.rs`: none).
fn module_of(src: &Path, file: &Path) -> Option<String> {
    let rel = file.strip_prefix(src).ok()?;
    let first = rel.components().next()?.as_os_str().to_string_lossy();
    let name = first.trim_end_matches(".rs").to_string();
    (name != "lib" && name != "main").then_some(name)
}

/// The crate modules a line of code names (`crate::x`), comments left out.
fn imports_in(code: &str) -> BTreeSet<String> {
    let mut found = BTreeSet::new();
    for line in code.lines() {
        let line = line.trim_start();
        if line.starts_with("//") {
            continue;
        }
        let mut rest = line;
        while let Some(at) = rest.find("crate::") {
            let after = &rest[at + "crate::".len()..];
            let name: String = after
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            if !name.is_empty() {
                found.insert(name);
            }
            rest = after;
        }
    }
    found
}

fn actual_layers() -> BTreeMap<String, BTreeSet<String>> {
    let src = root().join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let mut layers: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for f in files {
        let Some(module) = module_of(&src, &f) else {
            continue;
        };
        let code = std::fs::read_to_string(&f).unwrap();
        let entry = layers.entry(module.clone()).or_default();
        for m in imports_in(&code) {
            if m != module {
                entry.insert(m);
            }
        }
    }
    layers
}

/// The "Layers" table of ARCHITECTURE.md: `| `module` | `a`, `b` | … |`.
fn documented_layers() -> BTreeMap<String, BTreeSet<String>> {
    let doc = std::fs::read_to_string(root().join("ARCHITECTURE.md")).unwrap();
    let table = doc
        .split("## Layers")
        .nth(1)
        .expect("ARCHITECTURE.md has a '## Layers' section");
    let mut layers = BTreeMap::new();
    for line in table.lines().skip_while(|l| !l.starts_with('|')) {
        if !line.starts_with('|') {
            break;
        }
        let cells: Vec<&str> = line.split('|').map(str::trim).collect();
        let (Some(module), Some(imports)) = (cells.get(1), cells.get(2)) else {
            continue;
        };
        let Some(module) = module.strip_prefix('`').and_then(|m| m.strip_suffix('`')) else {
            continue; // the header and the rule
        };
        let imports: BTreeSet<String> = imports
            .split(',')
            .map(|s| s.trim().trim_matches('`').to_string())
            .filter(|s| !s.is_empty() && s != "nothing")
            .collect();
        layers.insert(module.to_string(), imports);
    }
    layers
}

#[test]
fn imports_follow_the_documented_layers() {
    let actual = actual_layers();
    let documented = documented_layers();
    let mut problems = Vec::new();
    for (module, imports) in &actual {
        match documented.get(module) {
            None => problems.push(format!("module `{module}` is missing from the table")),
            Some(allowed) => {
                for extra in imports.difference(allowed) {
                    problems.push(format!(
                        "`{module}` imports `{extra}`, which its row forbids"
                    ));
                }
                for stale in allowed.difference(imports) {
                    problems.push(format!(
                        "`{module}`'s row lists `{stale}`, which it no longer imports"
                    ));
                }
            }
        }
    }
    for module in documented.keys() {
        if !actual.contains_key(module) {
            problems.push(format!("the table lists `{module}`, which does not exist"));
        }
    }
    assert!(
        problems.is_empty(),
        "ARCHITECTURE.md Layers vs the code:\n{}",
        problems.join("\n")
    );
}

#[test]
fn the_walls_that_must_never_fall() {
    let actual = actual_layers();
    let never: &[(&str, &[&str])] = &[
        (
            "protocol",
            &[
                "store", "server", "client", "session", "cli", "mcp", "tunnel", "web", "net",
            ],
        ),
        (
            "store",
            &["server", "client", "session", "cli", "mcp", "tunnel"],
        ),
        ("client", &["store", "server", "cli", "mcp", "tunnel"]),
        ("session", &["server", "cli", "mcp", "tunnel"]),
        ("server", &["cli", "mcp", "client", "session", "tunnel"]),
        ("mcp", &["cli", "server", "tunnel"]),
        ("tunnel", &["store", "server", "cli", "mcp", "session"]),
    ];
    for (module, forbidden) in never {
        let imports = actual.get(*module).cloned().unwrap_or_default();
        for f in *forbidden {
            assert!(!imports.contains(*f), "`{module}` must never import `{f}`");
        }
    }
}

#[test]
fn no_source_file_is_over_900_lines() {
    let mut files = Vec::new();
    rust_files(&root().join("src"), &mut files);
    for entry in std::fs::read_dir(root().join("src/web/assets")).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "js" || e == "css") {
            files.push(path);
        }
    }
    let long = over_900_lines(&files);
    assert!(long.is_empty(), "over 900 lines: {long:?}");
}

/// The test code is held to the same bound: a test file past it becomes a folder
/// (`tests/<name>/main.rs` and modules, still one test binary). Only Rust files count:
/// the browser tests' Python in `tests/browser/` is left out.
#[test]
fn no_test_file_is_over_900_lines() {
    let mut files = Vec::new();
    rust_files(&root().join("tests"), &mut files);
    assert!(files.len() > 30, "found only {files:?}");
    let long = over_900_lines(&files);
    assert!(long.is_empty(), "over 900 lines: {long:?}");
}

fn over_900_lines(files: &[PathBuf]) -> Vec<String> {
    files
        .iter()
        .filter_map(|f| {
            let n = std::fs::read_to_string(f).unwrap().lines().count();
            (n > 900).then(|| format!("{} ({n} lines)", f.display()))
        })
        .collect()
}

/// The files of one flat module folder (`mod.rs` as "mod") and the siblings each one
/// imports: `super::x` and `crate::<folder>::x` from a file, `x::` from `mod.rs`. A name
/// that is not a sibling file is an item of `mod.rs`. Test modules are left out.
fn sibling_imports(folder: &str) -> BTreeMap<String, BTreeSet<String>> {
    let dir = root().join("src").join(folder);
    let crate_path = format!("crate::{}::", folder.replace('/', "::"));
    let mut code_of = BTreeMap::new();
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        assert!(
            !path.is_dir(),
            "{} has a subfolder; teach sibling_imports about it",
            dir.display()
        );
        let name = path.file_stem().unwrap().to_string_lossy().to_string();
        let code = std::fs::read_to_string(&path).unwrap();
        let code = code.split("#[cfg(test)]").next().unwrap_or_default();
        let code: Vec<&str> = code
            .lines()
            .filter(|l| !l.trim_start().starts_with("//"))
            .collect();
        code_of.insert(name, code.join("\n"));
    }
    let sibling = |name: &str| {
        if code_of.contains_key(name) && name != "mod" {
            name.to_string()
        } else {
            "mod".to_string()
        }
    };
    let ident = |s: &str| -> String {
        s.chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect()
    };
    let mut graph = BTreeMap::new();
    for (name, code) in &code_of {
        let mut found = BTreeSet::new();
        let mut paths: Vec<&str> = code.split(crate_path.as_str()).skip(1).collect();
        if name != "mod" {
            paths.extend(code.split("super::").skip(1));
        }
        for rest in paths {
            if let Some(list) = rest.strip_prefix('{') {
                let list = &list[..list.find('}').unwrap_or(list.len())];
                for item in list.split(',') {
                    let item = ident(item.trim());
                    if !item.is_empty() && item != "self" {
                        found.insert(sibling(&item));
                    }
                }
            } else {
                let item = ident(rest);
                if !item.is_empty() && item != "super" {
                    found.insert(sibling(&item));
                }
            }
        }
        if name == "mod" {
            for other in code_of.keys().filter(|n| *n != "mod") {
                let needle = format!("{other}::");
                let named = code.match_indices(&needle).any(|(at, _)| {
                    let before = code[..at].chars().next_back();
                    before.is_none_or(|c| !(c.is_ascii_alphanumeric() || c == '_' || c == ':'))
                });
                if named {
                    found.insert(other.clone());
                }
            }
        }
        found.remove(name);
        graph.insert(name.clone(), found);
    }
    graph
}

/// A circle of imports in `graph`, if there is one, as the files around it.
fn a_circle(graph: &BTreeMap<String, BTreeSet<String>>) -> Option<Vec<String>> {
    fn visit(
        node: &str,
        graph: &BTreeMap<String, BTreeSet<String>>,
        path: &mut Vec<String>,
        done: &mut BTreeSet<String>,
    ) -> Option<Vec<String>> {
        if let Some(at) = path.iter().position(|n| n == node) {
            let mut circle = path[at..].to_vec();
            circle.push(node.to_string());
            return Some(circle);
        }
        if done.contains(node) {
            return None;
        }
        path.push(node.to_string());
        for next in graph.get(node).into_iter().flatten() {
            if let Some(c) = visit(next, graph, path, done) {
                return Some(c);
            }
        }
        path.pop();
        done.insert(node.to_string());
        None
    }
    let mut done = BTreeSet::new();
    graph
        .keys()
        .find_map(|n| visit(n, graph, &mut Vec::new(), &mut done))
}

/// The folders whose files are layers too: no two import each other, however far round
/// (`mod.rs` is the top; what it builds lives below it).
const LAYERED_FOLDERS: &[&str] = &["server", "tunnel/broker"];

#[test]
fn no_files_of_the_server_or_the_broker_import_each_other_in_a_circle() {
    for folder in LAYERED_FOLDERS {
        let graph = sibling_imports(folder);
        assert!(graph.len() > 5, "{folder}: found {graph:?}");
        if let Some(circle) = a_circle(&graph) {
            panic!(
                "src/{folder}: {} import each other in a circle",
                circle.join(" → ")
            );
        }
    }
}

#[test]
fn the_circle_finder_finds_a_circle() {
    let graph = |edges: &[(&str, &str)]| {
        let mut g: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        for (a, b) in edges {
            g.entry(a.to_string()).or_default().insert(b.to_string());
            g.entry(b.to_string()).or_default();
        }
        g
    };
    let circle = a_circle(&graph(&[("a", "b"), ("b", "c"), ("c", "a"), ("c", "d")]));
    assert_eq!(circle.unwrap().len(), 4);
    assert_eq!(
        a_circle(&graph(&[("a", "b"), ("a", "c"), ("b", "c")])),
        None
    );
}
