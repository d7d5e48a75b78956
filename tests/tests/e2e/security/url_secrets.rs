//! A key in a URL's query string (`?key=…`, `?api-key=…`) is a secret like
//! any other: never printed in errors, logs or REST answers. And a query in
//! a provider's `api_base` stays a query (`…/v1/chat/completions?api-key=…`).

use openheim_e2e::install::{Install, stderr, stdout};
use openheim_e2e::{MockLlm, Reply};

const SECRET: &str = "s3cr3t-in-a-url-5e1f";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_mcp_url_with_a_key_is_reported_without_it() {
    let mock = MockLlm::start(vec![Reply::text("ok")]).await;
    let extra = format!("[mcp_servers.remote]\nurl = \"http://127.0.0.1:1/mcp?key={SECRET}\"");
    let install = Install::new(&mock, &extra);
    let output = install
        .openheim_with_env(&["run", "hello"], &[("RUST_LOG", "info")])
        .await;
    assert!(output.status.success(), "{}", stderr(&output));
    let (out, err) = (stdout(&output), stderr(&output));
    assert!(err.contains("remote"), "the failure is reported: {err}");
    assert!(!out.contains(SECRET) && !err.contains(SECRET), "{err}");
    // Said in words, once: no type names of the MCP library, and a server
    // that keeps failing the same way is not warned about again.
    assert!(
        !err.contains("rmcp") && !err.contains("Transport ["),
        "{err}"
    );
    let warnings = err
        .lines()
        .filter(|l| l.contains("MCP server failed"))
        .count();
    assert!(warnings <= 1, "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_query_in_api_base_stays_a_query_and_errors_hide_its_values() {
    let mock = MockLlm::start(vec![Reply::text("answered")]).await;
    let install = Install::new(&mock, "");
    let with_query = format!("{}?api-key={SECRET}", mock.base_url());
    let config = std::fs::read_to_string(install.home().join("config.toml")).unwrap();
    let config = config.replace(&mock.base_url(), &with_query);
    std::fs::write(install.home().join("config.toml"), config).unwrap();
    let output = install.openheim(&["run", "hello"]).await;
    assert!(output.status.success(), "{}", stderr(&output));
    assert_eq!(stdout(&output).trim(), "answered");
    mock.assert_no_violations();

    // The same base on a port nobody listens on: the error names the URL
    // without the key.
    let broken = std::fs::read_to_string(install.home().join("config.toml"))
        .unwrap()
        .replace(&mock.addr().to_string(), "127.0.0.1:1");
    std::fs::write(install.home().join("config.toml"), broken).unwrap();
    let output = install.openheim(&["run", "hello"]).await;
    assert!(!output.status.success());
    let err = stderr(&output);
    assert!(err.contains("127.0.0.1:1"), "{err}");
    assert!(!err.contains(SECRET), "{err}");
}
