//! The trust kernel does no I/O: its normal (non-dev) dependency closure holds no async runtime, no
//! storage and no HTTP stack, so what decides a release is pure functions over bytes.
//!
//! `cargo metadata` on this workspace unifies features across all members (the node turns on
//! alloy's providers, which pull in tokio), so its resolve graph would show tokio under core even
//! though building core alone never compiles it. The test therefore asks `cargo metadata` about a
//! throwaway crate whose only dependency is core: that resolve has exactly core's features.

use serde_json::Value;
use std::{
    collections::{BTreeSet, HashMap},
    path::{Path, PathBuf},
    process::Command,
};

/// Crates that mean I/O: an async runtime, storage, HTTP.
const FORBIDDEN: [&str; 4] = ["tokio", "sled", "reqwest", "hyper"];

#[test]
fn core_normal_dependencies_have_no_runtime_storage_or_http() {
    let probe = Probe::new();
    let metadata = probe.metadata();
    let closure = normal_closure(&metadata, "replicatoor-core");
    // Sanity: the walk found core's real dependencies, so an empty answer cannot pass by accident.
    for expected in ["alloy", "dcap-qvl", "hpke"] {
        assert!(closure.contains(expected), "{expected} missing from core's closure: {closure:?}");
    }
    let found: Vec<_> = FORBIDDEN.iter().filter(|name| closure.contains(**name)).collect();
    assert!(
        found.is_empty(),
        "replicatoor-core's normal dependencies include {found:?}; the trust kernel must stay I/O-free"
    );
}

/// The names of every package reachable from `root` through normal (not dev, not build) edges.
fn normal_closure(metadata: &Value, root: &str) -> BTreeSet<String> {
    let packages = metadata["packages"].as_array().expect("packages");
    let name_of: HashMap<&str, &str> = packages
        .iter()
        .map(|p| (p["id"].as_str().expect("package id"), p["name"].as_str().expect("package name")))
        .collect();
    let nodes: HashMap<&str, &Value> = metadata["resolve"]["nodes"]
        .as_array()
        .expect("resolve.nodes")
        .iter()
        .map(|n| (n["id"].as_str().expect("node id"), n))
        .collect();
    let root_id = *name_of.iter().find(|(_, name)| **name == root).map(|(id, _)| id).expect("root package");
    let mut seen = BTreeSet::new();
    let mut todo = vec![root_id];
    while let Some(id) = todo.pop() {
        if !seen.insert(id) {
            continue;
        }
        for dep in nodes[id]["deps"].as_array().expect("deps") {
            let normal = dep["dep_kinds"].as_array().expect("dep_kinds").iter().any(|k| k["kind"].is_null());
            if normal {
                todo.push(dep["pkg"].as_str().expect("dep pkg"));
            }
        }
    }
    seen.into_iter().map(|id| name_of[id].to_string()).collect()
}

/// A temporary crate depending only on core (by path), with the workspace's lock file so the
/// resolve is the workspace's versions and needs no network.
struct Probe(PathBuf);

impl Probe {
    fn new() -> Self {
        let core = Path::new(env!("CARGO_MANIFEST_DIR"));
        let dir = std::env::temp_dir().join(format!("replicatoor-core-deps-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("src")).expect("probe dir");
        std::fs::write(dir.join("src/lib.rs"), "").expect("probe lib.rs");
        let manifest = format!(
            "[package]\nname = \"core-deps-probe\"\nversion = \"0.0.0\"\nedition = \"2021\"\n\n\
             [dependencies]\nreplicatoor-core = {{ path = {:?} }}\n\n[workspace]\n",
            core.display().to_string()
        );
        std::fs::write(dir.join("Cargo.toml"), manifest).expect("probe Cargo.toml");
        std::fs::copy(core.join("../../Cargo.lock"), dir.join("Cargo.lock")).expect("workspace Cargo.lock");
        Probe(dir)
    }

    fn metadata(&self) -> Value {
        let cargo = env!("CARGO");
        let host = String::from_utf8(Command::new(cargo).arg("-vV").output().expect("cargo -vV").stdout)
            .expect("utf-8")
            .lines()
            .find_map(|l| l.strip_prefix("host: ").map(str::to_string))
            .expect("host triple");
        // Only the host's packages are needed (and downloaded); `--offline` keeps the test hermetic.
        let out = Command::new(cargo)
            .args(["metadata", "--format-version", "1", "--offline", "--filter-platform", &host])
            .current_dir(&self.0)
            .output()
            .expect("run cargo metadata");
        assert!(out.status.success(), "cargo metadata failed: {}", String::from_utf8_lossy(&out.stderr));
        serde_json::from_slice(&out.stdout).expect("cargo metadata JSON")
    }
}

impl Drop for Probe {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
