//! Project instructions with the real binaries: the workspace's `AGENTS.md`
//! and the files `project_instructions` names reach the system prompt after
//! the skills under `## Project instructions`, are read again for every
//! session (an edit shows in the next run), and an oversized file is cut
//! with a note saying so (docs/configuration.md, "Project instructions").

use openheim_e2e::install::{Install, SKILL_A, stderr};
use openheim_e2e::{MockLlm, Reply};

async fn run_ok(install: &Install, args: &[&str]) {
    let output = install.openheim(args).await;
    assert!(output.status.success(), "{args:?}: {}", stderr(&output));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agents_md_reaches_the_system_prompt_after_the_skills() {
    let mock = MockLlm::start(vec![Reply::text("ok"), Reply::text("ok")]).await;
    let install = Install::new(&mock, "project_instructions = [\"docs/RULES.md\"]");
    let workspace = install.workspace();
    std::fs::write(
        workspace.join("AGENTS.md"),
        "Run `make check` before committing.\n",
    )
    .unwrap();
    std::fs::create_dir_all(workspace.join("docs")).unwrap();
    std::fs::write(workspace.join("docs/RULES.md"), "Never edit vendor/.\n").unwrap();

    run_ok(&install, &["run", "--skills", "a", "hi"]).await;
    let prompt = mock.system_prompt(0).unwrap();
    let skill = prompt.find(SKILL_A).expect("skill in the prompt");
    let section = prompt
        .find("---\n## Project instructions\n### AGENTS.md\nRun `make check` before committing.\n### docs/RULES.md\nNever edit vendor/.\n")
        .unwrap_or_else(|| panic!("no project instructions section in:\n{prompt}"));
    assert!(
        skill < section,
        "instructions must follow the skills:\n{prompt}"
    );
    assert!(prompt.ends_with("Never edit vendor/.\n"), "{prompt}");

    // Read again per session: an edit shows in the next run.
    std::fs::write(workspace.join("AGENTS.md"), "Use tabs.\n").unwrap();
    run_ok(&install, &["run", "hi"]).await;
    let prompt = mock.system_prompt(1).unwrap();
    assert!(prompt.contains("### AGENTS.md\nUse tabs.\n"), "{prompt}");
    assert!(!prompt.contains("make check"), "{prompt}");
    mock.assert_no_violations();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_oversized_agents_md_is_cut_with_a_note_and_none_is_no_section() {
    let mock = MockLlm::start(vec![Reply::text("ok"), Reply::text("ok")]).await;
    let install = Install::new(&mock, "");
    run_ok(&install, &["run", "hi"]).await;
    let prompt = mock.system_prompt(0).unwrap();
    assert!(!prompt.contains("Project instructions"), "{prompt}");

    let line = "Always write a test first. ".repeat(3) + "\n";
    let big = line.repeat(2000);
    std::fs::write(install.workspace().join("AGENTS.md"), &big).unwrap();
    run_ok(&install, &["run", "hi"]).await;
    let prompt = mock.system_prompt(1).unwrap();
    assert!(prompt.contains("## Project instructions\n### AGENTS.md\nAlways write a test first."));
    let note = format!(
        "[AGENTS.md truncated: 32768 of its {} bytes shown (limit 32768 bytes for all project instructions)]\n",
        big.len()
    );
    assert!(prompt.ends_with(&note), "{}", &prompt[prompt.len() - 300..]);
    assert!(prompt.len() < 32768 + 2048, "{}", prompt.len());
    mock.assert_no_violations();
}
