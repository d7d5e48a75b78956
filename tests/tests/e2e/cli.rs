//! The CLI's own behaviour: `init`, and configuration errors at startup.

use openheim_e2e::MockLlm;
use openheim_e2e::install::{Install, stderr};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn init_writes_templates_and_never_overwrites() {
    let mock = MockLlm::start(Vec::new()).await;
    let install = Install::new(&mock, "");
    std::fs::remove_file(install.home().join("config.toml")).unwrap();
    std::fs::write(install.home().join("system.md"), "my identity").unwrap();

    let output = install.openheim(&["init"]).await;
    assert!(output.status.success(), "{}", stderr(&output));
    let config = std::fs::read_to_string(install.home().join("config.toml")).unwrap();
    assert!(config.contains("default_provider"), "{config}");
    assert!(stderr(&output).contains("kept"), "{}", stderr(&output));
    assert_eq!(
        std::fs::read_to_string(install.home().join("system.md")).unwrap(),
        "my identity"
    );

    let forced = install.openheim(&["init", "--force"]).await;
    assert!(forced.status.success());
    assert_ne!(
        std::fs::read_to_string(install.home().join("system.md")).unwrap(),
        "my identity"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_config_fails_at_startup_listing_every_problem() {
    let mock = MockLlm::start(Vec::new()).await;
    let install = Install::new(&mock, "max_iterations = \"many\"\ncolour = \"green\"");
    let output = install.openheim(&["run", "hello"]).await;
    assert_eq!(output.status.code(), Some(1));
    let err = stderr(&output);
    assert!(err.contains("2 problems"), "{err}");
    assert!(
        err.contains("`max_iterations`") && err.contains("`colour`: unknown key"),
        "{err}"
    );
    assert!(err.contains("config.toml"), "{err}");
    assert_eq!(
        mock.request_count(),
        0,
        "no request may be sent with a bad config"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn provider_errors_fail_the_run_with_a_clear_message() {
    let script = vec![openheim_e2e::Reply::http_error(
        401,
        serde_json::json!({"error": {"message": "Incorrect API key provided", "type": "invalid_request_error", "code": "invalid_api_key"}}),
    )];
    let mock = MockLlm::start(script).await;
    let install = Install::new(&mock, "");
    let output = install.openheim(&["run", "hello"]).await;
    assert_eq!(output.status.code(), Some(1));
    let err = stderr(&output);
    assert!(err.contains("error:") && err.contains("401"), "{err}");
    assert!(output.stdout.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_policies_deny_read_only_and_announce_auto() {
    use openheim_e2e::{Reply, ToolCallSpec};
    let write = || {
        Reply::tool_calls(vec![ToolCallSpec::new(
            "write_file",
            serde_json::json!({"path": "out.txt", "content": "x"}),
        )])
    };
    let script = vec![
        write(),
        Reply::text("refused"),
        Reply::text("planned"),
        write(),
        Reply::text("written"),
    ];
    let mock = MockLlm::start(script).await;
    let install = Install::new(&mock, "");

    // --deny: the edit is refused with a permission error, nothing written.
    let denied = install.openheim(&["run", "write it", "--deny"]).await;
    assert!(denied.status.success(), "{}", stderr(&denied));
    assert!(!install.workspace().join("out.txt").exists());
    let result = openheim_e2e::last_tool_result(&mock.request(1).body).unwrap();
    assert!(result.starts_with("Permission denied"), "{result}");

    // --read-only: only read-only tools are offered.
    let planned = install
        .openheim(&["run", "plan it", "--read-only", "--verbose"])
        .await;
    assert!(planned.status.success(), "{}", stderr(&planned));
    let tools = mock.tool_names(2);
    assert!(tools.contains(&"read_file".to_owned()), "{tools:?}");
    assert!(
        !tools
            .iter()
            .any(|t| t == "write_file" || t == "execute_command"),
        "{tools:?}"
    );
    assert!(
        stderr(&planned).contains("sandbox: "),
        "{}",
        stderr(&planned)
    );

    // Default (permissions.run = "auto"): allowed, and announced on stderr.
    let auto = install.openheim(&["run", "write it"]).await;
    assert!(auto.status.success(), "{}", stderr(&auto));
    assert!(
        stderr(&auto).contains("without approval"),
        "{}",
        stderr(&auto)
    );
    assert_eq!(
        std::fs::read_to_string(install.workspace().join("out.txt")).unwrap(),
        "x"
    );
    mock.assert_no_violations();
}
