//! The dependency rules of ARCHITECTURE.md ("Invariants"), read from
//! `cargo metadata`, and the confinement of transport types, secrets and
//! environment reads to their modules.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

const SERVICES: &[&str] = &[
    "openheim-agent-loop",
    "openheim-llm-proxy",
    "openheim-tool-executor",
    "openheim-mcp-broker",
];
/// Crates allowed to depend on several services.
const COMPOSITION_ROOTS: &[&str] = &["openheim", "openheim-e2e"];

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

/// Package name → names of the workspace crates it depends on (normal and build).
fn workspace_deps() -> BTreeMap<String, BTreeSet<String>> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let output = std::process::Command::new(cargo)
        .args([
            "metadata",
            "--format-version",
            "1",
            "--no-deps",
            "--offline",
        ])
        .current_dir(workspace_root())
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let metadata: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    let packages = metadata["packages"].as_array().unwrap();
    let ours: BTreeSet<String> = packages
        .iter()
        .map(|p| p["name"].as_str().unwrap().to_owned())
        .collect();
    packages
        .iter()
        .map(|p| {
            let deps = p["dependencies"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|d| d["kind"].as_str() != Some("dev"))
                .map(|d| d["name"].as_str().unwrap().to_owned())
                .filter(|n| ours.contains(n))
                .collect();
            (p["name"].as_str().unwrap().to_owned(), deps)
        })
        .collect()
}

#[test]
fn dependency_rules_hold() {
    let deps = workspace_deps();
    for service in SERVICES {
        assert!(
            deps.contains_key(*service),
            "{service} is not in the workspace"
        );
    }
    let mut violations = Vec::new();
    for (package, uses) in &deps {
        let services: Vec<&String> = uses
            .iter()
            .filter(|d| SERVICES.contains(&d.as_str()))
            .collect();
        if SERVICES.contains(&package.as_str()) && !services.is_empty() {
            violations.push(format!(
                "service {package} depends on service(s) {services:?}"
            ));
        }
        if package == "openheim-gateway" && !services.is_empty() {
            violations.push(format!("the gateway depends on service(s) {services:?}"));
        }
        if services.len() > 1 && !COMPOSITION_ROOTS.contains(&package.as_str()) {
            violations.push(format!(
                "{package} depends on several services {services:?}"
            ));
        }
    }
    assert!(
        violations.is_empty(),
        "dependency rules broken:\n{}",
        violations.join("\n")
    );
    // The rule is not vacuous: the CLI does compose all four.
    assert_eq!(
        deps["openheim"]
            .iter()
            .filter(|d| SERVICES.contains(&d.as_str()))
            .count(),
        4
    );
}

#[test]
fn the_acp_adapter_reaches_the_agent_loop_only_through_the_wire() {
    let deps = workspace_deps();
    let allowed: BTreeSet<String> = ["openheim-proto", "openheim-config", "openheim-time"]
        .into_iter()
        .map(str::to_owned)
        .collect();
    let acp = &deps["openheim-acp"];
    assert!(
        acp.is_subset(&allowed),
        "openheim-acp depends on {acp:?}; only {allowed:?} are allowed"
    );
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

/// Files of the services' `src/` (not their tests) containing `needle`,
/// except the allowed file names.
fn files_mentioning(needle: &str, allowed: &[&str], crates: &[&str]) -> Vec<String> {
    let mut hits = Vec::new();
    for dir in crates {
        let mut files = Vec::new();
        rust_files(&workspace_root().join(dir).join("src"), &mut files);
        for file in files {
            let name = file.file_name().unwrap().to_str().unwrap();
            if allowed.contains(&name) {
                continue;
            }
            let text = std::fs::read_to_string(&file).unwrap();
            // Unit tests at the bottom of a module may build requests freely.
            let code = text.split("#[cfg(test)]").next().unwrap_or_default();
            if code.contains(needle) {
                hits.push(
                    file.strip_prefix(workspace_root())
                        .unwrap()
                        .display()
                        .to_string(),
                );
            }
        }
    }
    hits
}

const SERVICE_DIRS: &[&str] = &[
    "services/agent-loop",
    "services/llm-proxy",
    "services/tool-executor",
    "services/mcp-broker",
];

#[test]
fn tonic_types_stay_in_adapters() {
    // grpc.rs = server adapter, backends.rs = client adapter, lib.rs/main.rs
    // = wiring (server builder).
    let allowed = ["grpc.rs", "backends.rs", "lib.rs", "main.rs"];
    // Any `tonic::` path, imports included, names a transport type.
    let hits = files_mentioning("tonic::", &allowed, SERVICE_DIRS);
    assert!(hits.is_empty(), "tonic used outside adapters: {hits:?}");
}

/// The workspace members, as `Cargo.toml` lists them.
fn workspace_members() -> Vec<String> {
    let manifest = std::fs::read_to_string(workspace_root().join("Cargo.toml")).unwrap();
    let list = manifest
        .split("members = [")
        .nth(1)
        .and_then(|rest| rest.split(']').next())
        .expect("a members list in Cargo.toml");
    list.split(',')
        .map(|m| m.trim().trim_matches('"').to_owned())
        .filter(|m| !m.is_empty())
        .collect()
}

/// Only binaries (`main.rs`, `src/bin/`) and `openheim-boot` read the
/// process environment or the current directory; every library gets them
/// passed in.
#[test]
fn libraries_never_read_the_environment() {
    const READS: &[&str] = &[
        "env::var(",
        "env::var_os(",
        "env::vars(",
        "env::vars_os(",
        "env::current_dir(",
        "env::set_var(",
        "env::remove_var(",
        "env::set_current_dir(",
        "from_default_env(",
    ];
    // Test support is not a library of the product.
    let exempt = ["services/boot", "tests", "tests/redis-server"];
    let libraries: Vec<String> = workspace_members()
        .into_iter()
        .filter(|m| !exempt.contains(&m.as_str()))
        .collect();
    assert!(libraries.iter().any(|m| m == "cli"), "{libraries:?}");
    let dirs: Vec<&str> = libraries.iter().map(String::as_str).collect();
    let mut hits = Vec::new();
    for read in READS {
        for hit in files_mentioning(read, &["main.rs"], &dirs) {
            if !hit.contains("/src/bin/") {
                hits.push(format!("{hit}: {read}"));
            }
        }
    }
    assert!(hits.is_empty(), "libraries read the environment: {hits:#?}");
}

/// Provider keys are read only by llm-proxy. The one other secret reader is
/// mcp-broker's `secrets.rs`, for MCP server header values and OAuth client
/// secrets it must send.
#[test]
fn only_llm_proxy_reads_secrets() {
    let others = ["services/agent-loop", "services/tool-executor", "gateway"];
    let hits = files_mentioning(".expose()", &[], &others);
    assert!(hits.is_empty(), "secrets read outside llm-proxy: {hits:?}");
    let broker = files_mentioning(".expose()", &["secrets.rs"], &["services/mcp-broker"]);
    assert!(
        broker.is_empty(),
        "mcp-broker reads secrets outside secrets.rs: {broker:?}"
    );
}

/// The library exposes llm-proxy only through its extension point for
/// custom providers (`openheim_llm_proxy::custom`, as `openheim::llm`);
/// the rest of the service stays internal and free to change.
#[test]
fn the_library_re_exports_only_the_provider_extension_point() {
    let mut files = Vec::new();
    rust_files(&workspace_root().join("cli/src"), &mut files);
    let mut hits = Vec::new();
    for file in files {
        let text = std::fs::read_to_string(&file).unwrap();
        for line in text.lines() {
            let line = line.trim_start();
            if line.starts_with("pub use openheim_llm_proxy")
                && !line.starts_with("pub use openheim_llm_proxy::custom::")
            {
                hits.push(format!("{}: {line}", file.display()));
            }
        }
    }
    assert!(hits.is_empty(), "llm-proxy internals re-exported: {hits:?}");
    let lib = std::fs::read_to_string(workspace_root().join("cli/src/lib.rs")).unwrap();
    assert!(lib.contains("pub use openheim_llm_proxy::custom::{"));
}

/// The web app's source files (TypeScript and TSX), with their text.
fn web_sources() -> Vec<(PathBuf, String)> {
    fn walk(dir: &Path, out: &mut Vec<(PathBuf, String)>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                walk(&path, out);
            } else if path.extension().is_some_and(|e| e == "ts" || e == "tsx") {
                let text = std::fs::read_to_string(&path).unwrap();
                out.push((path, text));
            }
        }
    }
    let mut out = Vec::new();
    walk(&workspace_root().join("gateway/web/src"), &mut out);
    assert!(out.len() > 5, "no web app sources found");
    out
}

/// Quoted strings in `text` that start with `prefix`, up to a character
/// that cannot be part of a route or method name.
fn quoted_with_prefix(text: &str, prefix: &str) -> BTreeSet<String> {
    let mut found = BTreeSet::new();
    for quote in ['"', '`'] {
        let needle = format!("{quote}{prefix}");
        for (at, _) in text.match_indices(&needle) {
            let rest = &text[at + 1..];
            let end = rest
                .find(|c: char| !(c.is_ascii_alphanumeric() || "/_-".contains(c)))
                .unwrap_or(rest.len());
            found.insert(rest[..end].to_owned());
        }
    }
    found
}

/// The web app is a client of the documented protocol only: every route it
/// calls is in docs/api.md, every ACP method it sends is in docs/acp.md.
#[test]
fn the_web_app_speaks_only_the_documented_protocol() {
    let api = std::fs::read_to_string(workspace_root().join("docs/api.md")).unwrap();
    let acp = std::fs::read_to_string(workspace_root().join("docs/acp.md")).unwrap();
    let mut routes = BTreeSet::new();
    let mut methods = BTreeSet::new();
    for (_, text) in web_sources() {
        for prefix in ["/api/", "/readyz", "/healthz", "/ws"] {
            routes.extend(quoted_with_prefix(&text, prefix));
        }
        for prefix in ["session/", "initialize"] {
            methods.extend(quoted_with_prefix(&text, prefix));
        }
    }
    assert!(routes.contains("/api/sessions"), "{routes:?}");
    assert!(methods.contains("session/prompt"), "{methods:?}");
    for route in &routes {
        assert!(
            api.contains(&format!("`GET {route}")) || api.contains(&format!("`WS {route}")),
            "{route} is not in docs/api.md"
        );
    }
    for method in &methods {
        assert!(
            acp.contains(&format!("`{method}")),
            "{method} is not in docs/acp.md"
        );
    }
}

/// The CSP forbids HTML parsed from strings (Trusted Types with no policy):
/// the app builds every element with its renderer, never from text.
#[test]
fn the_web_app_never_builds_html_from_strings() {
    for (path, text) in web_sources() {
        for sink in [
            "innerHTML",
            "outerHTML",
            "dangerouslySetInnerHTML",
            "insertAdjacentHTML",
            "document.write",
            "eval(",
            "new Function",
        ] {
            assert!(!text.contains(sink), "{} uses {sink}", path.display());
        }
    }
}

/// Long-term memory is agent-loop's: the storage crate depends on no other
/// openheim crate but two leaves (the Redis connection every Redis store
/// shares, and civil dates), no other service or gateway crate uses it
/// (they reach memory through agent-loop's RPCs), and, a library, it never
/// reads the environment.
#[test]
fn memory_belongs_to_the_agent_loop() {
    let deps = workspace_deps();
    let leaves = ["openheim-redis-client", "openheim-time"];
    assert!(
        deps["openheim-memory"]
            .iter()
            .all(|d| leaves.contains(&d.as_str())),
        "openheim-memory depends on {:?}",
        deps["openheim-memory"]
    );
    for leaf in leaves {
        assert!(deps[leaf].is_empty(), "{leaf} depends on {:?}", deps[leaf]);
    }
    let users: Vec<&String> = deps
        .iter()
        .filter(|(_, uses)| uses.contains("openheim-memory"))
        .map(|(package, _)| package)
        .collect();
    for user in &users {
        assert!(
            ["openheim-agent-loop", "openheim", "openheim-e2e"].contains(&user.as_str()),
            "{user} depends on openheim-memory; reach memory through agent-loop instead"
        );
    }
    assert!(users.iter().any(|u| *u == "openheim-agent-loop"));
    let reads = files_mentioning("std::env", &[], &["services/memory"]);
    assert!(
        reads.is_empty(),
        "openheim-memory reads the environment: {reads:?}"
    );
}

/// One rule, one place: the tool rules both services apply come from one
/// crate, and that crate touches nothing (no I/O, no async, no
/// environment), so either service can apply them to what it did.
#[test]
fn tool_rules_are_shared_and_pure() {
    let deps = workspace_deps();
    for service in ["openheim-agent-loop", "openheim-tool-executor"] {
        assert!(
            deps[service].contains("openheim-tool-rules"),
            "{service} does not use openheim-tool-rules"
        );
    }
    let manifest =
        std::fs::read_to_string(workspace_root().join("services/tool-rules/Cargo.toml")).unwrap();
    let allowed = ["serde", "thiserror", "similar"];
    let section = manifest
        .split("[dependencies]")
        .nth(1)
        .and_then(|rest| rest.split("\n[").next())
        .unwrap();
    let names = section
        .lines()
        .filter(|line| !line.trim().is_empty() && !line.starts_with('#'))
        .map(|line| line.split(['=', '.']).next().unwrap_or_default().trim());
    for name in names {
        assert!(
            allowed.contains(&name),
            "openheim-tool-rules depends on {name}; only {allowed:?} are allowed"
        );
    }
    for needle in [
        "std::fs",
        "std::env",
        "std::process",
        "std::net",
        "tokio",
        "async fn",
    ] {
        let hits = files_mentioning(needle, &[], &["services/tool-rules"]);
        assert!(hits.is_empty(), "{needle} in {hits:?}");
    }
}

/// One rule, one place: the civil date of a timestamp is computed by one
/// crate without dependencies, and no other crate carries a copy of the
/// algorithm (its epoch shift, 719,468 days, would show one).
#[test]
fn civil_dates_have_one_dependency_free_crate() {
    let deps = workspace_deps();
    for user in ["openheim-acp", "openheim-mcp-broker", "openheim-memory"] {
        assert!(
            deps[user].contains("openheim-time"),
            "{user} does not use openheim-time"
        );
    }
    let manifest =
        std::fs::read_to_string(workspace_root().join("services/time/Cargo.toml")).unwrap();
    let section = manifest
        .split("[dependencies]")
        .nth(1)
        .and_then(|rest| rest.split("\n[").next())
        .unwrap();
    assert!(
        section.lines().all(|line| line.trim().is_empty()),
        "openheim-time has dependencies: {section}"
    );
    let copies: Vec<String> = workspace_members()
        .iter()
        .filter(|m| m.as_str() != "services/time")
        .flat_map(|m| files_mentioning("719_468", &[], &[m.as_str()]))
        .collect();
    assert!(copies.is_empty(), "civil dates computed in {copies:?}");
}

/// agent-loop's top-level modules and the `crate::` modules each one names.
fn agent_loop_imports() -> BTreeMap<String, BTreeSet<String>> {
    let src = workspace_root().join("services/agent-loop/src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for file in files {
        let relative = file.strip_prefix(&src).unwrap();
        let first = relative.components().next().unwrap().as_os_str();
        let module = first.to_str().unwrap().trim_end_matches(".rs").to_owned();
        if module == "lib" || module == "main" {
            continue;
        }
        let text = std::fs::read_to_string(&file).unwrap();
        let code = text.split("#[cfg(test)]").next().unwrap_or_default();
        let used = graph.entry(module.clone()).or_default();
        for (at, _) in code.match_indices("crate::") {
            let name: String = code[at + "crate::".len()..]
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            if name != module && !name.is_empty() {
                used.insert(name);
            }
        }
    }
    graph
}

/// No module of agent-loop imports one that imports it back (directly or
/// around a circle): what a turn is made of lives below `turn/`, which
/// only `service.rs` (which starts turns) imports.
#[test]
fn agent_loop_modules_import_no_circle() {
    let graph = agent_loop_imports();
    assert!(graph.contains_key("turn") && graph.contains_key("client"));
    for start in graph.keys() {
        // Every module reachable from `start`; reaching `start` again is a circle.
        let mut seen = BTreeSet::new();
        let mut todo: Vec<&String> = graph[start].iter().collect();
        while let Some(next) = todo.pop() {
            assert!(next != start, "{start} imports itself around a circle");
            if seen.insert(next.clone())
                && let Some(more) = graph.get(next)
            {
                todo.extend(more.iter());
            }
        }
    }
    let importers: Vec<&String> = graph
        .iter()
        .filter(|(_, used)| used.contains("turn"))
        .map(|(module, _)| module)
        .collect();
    assert_eq!(importers, ["service"], "only service.rs starts turns");
}
