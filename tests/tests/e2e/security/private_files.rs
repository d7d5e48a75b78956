//! What openheim stores for a user is the user's alone (docs/security.md,
//! "Stored data"): the history directory is 0700, each session log and the
//! memory database 0600, whatever the umask.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use openheim_e2e::install::{Install, session_id, stderr};
use openheim_e2e::{MockLlm, Reply, ToolCallSpec};
use serde_json::json;

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .permissions()
        .mode()
        & 0o777
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn history_and_memory_are_readable_by_their_owner_only() {
    let script = vec![
        Reply::tool_calls(vec![
            ToolCallSpec::new("remember", json!({"text": "the build needs make"})).with_id("m1"),
        ]),
        Reply::text("Noted."),
    ];
    let mock = MockLlm::start(script).await;
    let install = Install::new(&mock, "");
    let output = install.openheim(&["run", "remember this"]).await;
    assert!(output.status.success(), "{}", stderr(&output));

    let log = install.history_file(&session_id(&output));
    assert_eq!(mode(&log), 0o600, "{}", log.display());
    assert_eq!(mode(log.parent().unwrap()), 0o700);
    assert_eq!(mode(&install.home().join("memory.db")), 0o600);
}
