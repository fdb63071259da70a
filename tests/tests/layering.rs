//! Dependencies point one way: `demo-server -> reactor -> timerfd-sys` (the
//! reactor's package is `timerfd-reactor`; its library keeps the short name).
//! Nothing below knows about what is above it, no product crate pulls in
//! an async runtime or a comparison peer, and the shared test helpers are
//! only ever a dev-dependency. Read from `cargo metadata` (manifests only,
//! no build) and from the root `Cargo.lock`.

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;

use serde_json::Value;

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap()
}

/// `(package, dependency, kind)` for every workspace package; kind is
/// `normal`, `dev` or `build`.
fn edges() -> Vec<(String, String, String)> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let out = Command::new(cargo)
        .args(["metadata", "--format-version", "1", "--no-deps", "--offline"])
        .current_dir(repo())
        .output()
        .expect("cargo metadata runs");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let meta: Value = serde_json::from_slice(&out.stdout).unwrap();
    let mut edges = Vec::new();
    for p in meta["packages"].as_array().unwrap() {
        for d in p["dependencies"].as_array().unwrap() {
            let kind = d["kind"].as_str().unwrap_or("normal").to_string();
            let name = d["name"].as_str().unwrap().to_string();
            edges.push((p["name"].as_str().unwrap().to_string(), name, kind));
        }
    }
    edges
}

fn normal_deps(edges: &[(String, String, String)], package: &str) -> BTreeSet<String> {
    edges
        .iter()
        .filter(|(p, _, k)| p == package && k == "normal")
        .map(|(_, d, _)| d.clone())
        .collect()
}

/// Crates that must never be a product dependency: async runtimes and the
/// peers the benchmarks compare against.
const FORBIDDEN: [&str; 9] =
    ["tokio", "async-std", "smol", "futures", "mio", "nix", "timerfd", "axum", "calloop"];

#[test]
fn dependencies_point_one_way() {
    let edges = edges();
    let ours = ["timerfd-sys", "timerfd-reactor", "demo-server"];
    let sys = normal_deps(&edges, "timerfd-sys");
    assert!(ours.iter().all(|o| !sys.contains(*o)), "timerfd-sys depends on {sys:?}");
    let reactor = normal_deps(&edges, "timerfd-reactor");
    assert!(reactor.contains("timerfd-sys"), "{reactor:?}");
    assert!(!reactor.contains("demo-server"), "the reactor knows about HTTP: {reactor:?}");
    let server = normal_deps(&edges, "demo-server");
    assert!(server.contains("timerfd-reactor"), "{server:?}");
    // The server reaches the kernel's timers through the reactor alone.
    assert!(!server.contains("timerfd-sys"), "{server:?}");
}

/// The top-level modules of `src` and the other top-level modules each one
/// names by path (`crate::NAME::...`). A name the crate root re-exports
/// (`crate::Reactor`) is the crate's public face, not an edge between modules.
fn module_edges(src: &std::path::Path) -> Vec<(String, String)> {
    let mut edges = Vec::new();
    let top: Vec<String> = std::fs::read_dir(src)
        .unwrap()
        .flatten()
        .filter_map(|e| e.path().file_stem()?.to_str().map(str::to_string))
        .filter(|m| m != "lib" && m != "main")
        .collect();
    for module in &top {
        let mut files = vec![src.join(format!("{module}.rs"))];
        if let Ok(dir) = std::fs::read_dir(src.join(module)) {
            files.extend(dir.flatten().map(|e| e.path()).filter(|p| p.is_file()));
        }
        for file in files {
            let Ok(text) = std::fs::read_to_string(&file) else { continue };
            for other in &top {
                if other != module && text.contains(&format!("crate::{other}::")) {
                    edges.push((module.clone(), other.clone()));
                }
            }
        }
    }
    edges.sort();
    edges.dedup();
    edges
}

/// No two modules of a product crate import each other, directly or round
/// a longer circle: each module can be read knowing only those below it.
#[test]
fn no_import_circle_in_any_product_crate() {
    for krate in ["timerfd-sys", "reactor", "demo-server"] {
        let edges = module_edges(&repo().join(krate).join("src"));
        // Depth-first search for a cycle, naming it.
        fn visit<'a>(
            at: &'a str,
            edges: &'a [(String, String)],
            path: &mut Vec<&'a str>,
            done: &mut BTreeSet<&'a str>,
        ) -> Option<Vec<String>> {
            if let Some(i) = path.iter().position(|p| *p == at) {
                return Some(path[i..].iter().map(|s| s.to_string()).chain([at.into()]).collect());
            }
            if !done.insert(at) {
                return None;
            }
            path.push(at);
            for (_, to) in edges.iter().filter(|(from, _)| from == at) {
                if let Some(cycle) = visit(to, edges, path, done) {
                    return Some(cycle);
                }
            }
            path.pop();
            None
        }
        let mut done = BTreeSet::new();
        for (from, _) in &edges {
            let cycle = visit(from, &edges, &mut Vec::new(), &mut done);
            assert!(cycle.is_none(), "{krate}: an import circle: {}", cycle.unwrap().join(" -> "));
        }
    }
}

#[test]
fn no_product_crate_depends_on_a_runtime_or_a_peer() {
    let edges = edges();
    for product in ["timerfd-sys", "timerfd-reactor", "demo-server"] {
        for (p, d, kind) in &edges {
            if p == product {
                assert!(!FORBIDDEN.contains(&d.as_str()), "{p} has a {kind} dependency on {d}");
            }
        }
    }
}

#[test]
fn test_support_is_only_a_dev_dependency() {
    let edges = edges();
    for (p, d, kind) in &edges {
        if d == "test-support" {
            assert_eq!(kind, "dev", "{p} depends on test-support as {kind}");
        }
    }
}

#[test]
fn the_workspace_lock_file_holds_no_peer_so_cargo_test_never_builds_one() {
    let lock = std::fs::read_to_string(repo().join("Cargo.lock")).unwrap();
    let names: BTreeSet<&str> =
        lock.lines().filter_map(|l| l.strip_prefix("name = \"")?.strip_suffix('"')).collect();
    assert!(names.contains("timerfd-reactor"), "not the workspace lock file");
    for peer in FORBIDDEN {
        assert!(
            !names.contains(peer),
            "{peer} is in Cargo.lock: `cargo test --workspace` would build it"
        );
    }
}

/// The reactor reads in one sitting: no file of `reactor/src` over 450
/// lines (tests included), so each one does one job.
#[test]
fn no_reactor_file_is_over_450_lines() {
    fn walk(dir: &Path, out: &mut Vec<(String, usize)>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                walk(&path, out);
            } else if path.extension().is_some_and(|e| e == "rs") {
                let lines = std::fs::read_to_string(&path).unwrap().lines().count();
                out.push((path.display().to_string(), lines));
            }
        }
    }
    let mut files = Vec::new();
    walk(&repo().join("reactor/src"), &mut files);
    assert!(files.len() > 10, "{files:?}");
    let long: Vec<_> = files.iter().filter(|(_, n)| *n > 450).collect();
    assert!(long.is_empty(), "over 450 lines: {long:?}");
}
