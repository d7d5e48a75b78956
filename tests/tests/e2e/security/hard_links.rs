//! Hard links (docs/security.md, "Hard links"): the file tools and the fs
//! channel follow a hard link like the file it is, since no one confined
//! can make one that leads outside: a confined shell command cannot link a
//! file from outside the workspace into it (Landlock's `refer` right), and
//! no file tool creates links. Writes through a file with several links are
//! refused all the same.

use openheim_e2e::install::{Install, stderr};
use openheim_e2e::{MockLlm, Reply, ToolCallSpec};
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_confined_command_cannot_link_an_outside_file_into_the_workspace() {
    // Outside the workspace and the temp directories, owned by this user.
    let outside = crate::e2e::scratch::outside_temp();
    let secret = outside.path().join("secret.txt");
    std::fs::write(&secret, "outside secret").unwrap();
    let command = format!(
        "ln {} linked.txt; echo link=$?; echo in > own.txt; ln own.txt own-link.txt; echo local=$?",
        secret.display()
    );
    let script = vec![
        Reply::tool_calls(vec![ToolCallSpec::new(
            "execute_command",
            json!({ "command": command }),
        )]),
        Reply::tool_calls(vec![
            ToolCallSpec::new("read_file", json!({"path": "linked.txt"})),
            ToolCallSpec::new(
                "write_file",
                json!({"path": "own-link.txt", "content": "x"}),
            ),
        ]),
        Reply::text("done"),
    ];
    let mock = MockLlm::start(script).await;
    let install = Install::new(&mock, "[tools]\nsandbox = \"enforce\"");
    let output = install.openheim(&["run", "--yes", "link it"]).await;
    assert!(output.status.success(), "{}", stderr(&output));
    let results: Vec<String> = mock
        .request(2)
        .messages()
        .iter()
        .filter(|m| m["role"] == "tool")
        .map(|m| m["content"].as_str().unwrap_or_default().to_owned())
        .collect();
    assert!(
        !results[0].contains("link=0"),
        "the link was made: {}",
        results[0]
    );
    assert!(
        results[0].contains("local=0"),
        "links inside the workspace work: {}",
        results[0]
    );
    assert!(!install.workspace().join("linked.txt").exists());
    assert!(!results[1].contains("outside secret"), "{}", results[1]);
    assert!(
        results[2].contains("hard link"),
        "writes through links are refused: {}",
        results[2]
    );
    assert_eq!(std::fs::read_to_string(&secret).unwrap(), "outside secret");
}
