//! OS confinement of the shell (Landlock) and its environment hygiene. The
//! confinement checks are skipped, with the reason printed, where the
//! kernel cannot confine; these tests run as root, which Landlock confines
//! all the same.

use openheim_tool_executor::ToolExecutorConfig;
use openheim_tool_executor::confinement::SandboxMode;

use crate::support::{config, confined, harness, harness_with, scratch_dir};

fn exit_code(output: &str) -> &str {
    output.lines().next().unwrap_or_default()
}

#[tokio::test]
async fn confined_commands_write_only_inside_the_workspace_and_temp() {
    let h = harness();
    if !confined(
        &h,
        "confined_commands_write_only_inside_the_workspace_and_temp",
    )
    .await
    {
        return;
    }
    let etc = h.shell("echo x > /tmp/../etc/openheim-test").await;
    assert_ne!(exit_code(&etc.output), "exit code: 0", "{}", etc.output);
    assert!(etc.output.contains("Permission denied"), "{}", etc.output);
    assert!(!std::path::Path::new("/etc/openheim-test").exists());

    let parent = h.dir.path().display();
    let outside = h.outside.display();
    for command in [
        "echo x > ../parent-write".to_owned(),
        format!("echo x > {parent}/parent-write"),
        format!("echo x > {outside}/planted.txt"),
        format!("echo x >> {outside}/secret.txt"),
        format!("rm {outside}/secret.txt"),
        format!("mkdir {outside}/d"),
        format!("ln {outside}/secret.txt hard"),
        format!("mv {outside}/secret.txt moved"),
    ] {
        let resp = h.shell(&command).await;
        assert_ne!(
            exit_code(&resp.output),
            "exit code: 0",
            "{command}: {}",
            resp.output
        );
    }
    assert!(!h.dir.path().join("parent-write").exists());
    h.assert_outside_untouched();

    let inside = h
        .shell(
            "mkdir -p sub && echo ok > sub/f && cat sub/f && t=$(mktemp) && echo tmp > $t && rm $t",
        )
        .await;
    assert_eq!(inside.output, "exit code: 0\nstdout:\nok\n");
    let devices = h
        .shell("echo x > /dev/null && head -c 4 /dev/zero | wc -c && echo out > /dev/stdout && echo err > /dev/stderr")
        .await;
    assert_eq!(
        devices.output,
        "exit code: 0\nstdout:\n4\nout\n\nstderr:\nerr\n"
    );
    // Reading stays possible everywhere.
    let read = h.shell(&format!("cat {outside}/secret.txt")).await;
    assert_eq!(read.output, "exit code: 0\nstdout:\nsecret");
}

#[tokio::test]
async fn confinement_stays_with_the_command_not_the_process() {
    let h = harness();
    if !confined(&h, "confinement_stays_with_the_command_not_the_process").await {
        return;
    }
    let resp = h
        .shell(&format!("echo x > {}/nope", h.outside.display()))
        .await;
    assert_ne!(exit_code(&resp.output), "exit code: 0");
    // This thread, a blocking-pool thread and a new thread may all still
    // write where the command could not.
    let here = h.outside.join("from-test-thread");
    std::fs::write(&here, "x").unwrap();
    let pooled = h.outside.join("from-blocking-pool");
    tokio::task::spawn_blocking(move || std::fs::write(pooled, "x"))
        .await
        .unwrap()
        .unwrap();
    let spawned = h.outside.join("from-new-thread");
    std::thread::spawn(move || std::fs::write(spawned, "x"))
        .join()
        .unwrap()
        .unwrap();
    for name in ["from-test-thread", "from-blocking-pool", "from-new-thread"] {
        std::fs::remove_file(h.outside.join(name)).unwrap();
    }
}

#[tokio::test]
async fn sandbox_info_reports_the_level() {
    let h = harness();
    let info = h.sandbox_info().await;
    match info.confinement.as_str() {
        "landlock" => {
            assert!(
                info.detail.starts_with("Landlock (kernel ABI v"),
                "{}",
                info.detail
            );
            assert!(
                info.detail
                    .contains("may write only inside the workspace, /tmp")
            );
        }
        "none" => assert!(info.detail.contains("no OS confinement"), "{}", info.detail),
        other => panic!("unexpected confinement {other}: {}", info.detail),
    }
    let off = harness_with(
        ToolExecutorConfig {
            sandbox: SandboxMode::Off,
            ..config()
        },
        Vec::new(),
    );
    let info = off.sandbox_info().await;
    assert_eq!(info.confinement, "none");
    assert!(
        info.detail.contains("the container is the sandbox"),
        "{}",
        info.detail
    );
    // Off means off: the parent of the workspace is writable again.
    let resp = off
        .shell("echo x > ../unconfined && cat ../unconfined")
        .await;
    assert_eq!(resp.output, "exit code: 0\nstdout:\nx\n");
}

#[tokio::test]
async fn writable_paths_and_enforce_mode() {
    let probe = harness();
    if !confined(&probe, "writable_paths_and_enforce_mode").await {
        return;
    }
    let cache = scratch_dir();
    let h = harness_with(
        ToolExecutorConfig {
            sandbox: SandboxMode::Enforce,
            writable_paths: vec![cache.path().to_path_buf()],
            ..config()
        },
        Vec::new(),
    );
    let resp = h
        .shell(&format!("echo cached > {}/entry", cache.path().display()))
        .await;
    assert_eq!(resp.output, "exit code: 0\n(no output)");
    let info = h.sandbox_info().await;
    assert!(info.detail.contains(&cache.path().display().to_string()));
    let denied = h
        .shell(&format!("echo x > {}/x", h.outside.display()))
        .await;
    assert_ne!(exit_code(&denied.output), "exit code: 0");
}

#[tokio::test]
async fn commands_see_only_the_environment_the_policy_lets_through() {
    // cargo sets CARGO_* variables for test binaries; they stand in for
    // whatever the executor's environment holds.
    let denying = harness_with(
        ToolExecutorConfig {
            env_deny: vec!["CARGO_*".to_owned()],
            ..config()
        },
        Vec::new(),
    );
    let env = denying.shell("env").await;
    assert!(env.output.contains("\nPATH="), "{}", env.output);
    assert!(!env.output.contains("CARGO_"), "{}", env.output);

    let allowing = harness_with(
        ToolExecutorConfig {
            env_allow: vec!["CARGO_PKG_NAME".to_owned()],
            ..config()
        },
        Vec::new(),
    );
    let env = allowing.shell("env | cut -d= -f1 | sort").await;
    let names: Vec<&str> = env.output.lines().skip(2).collect();
    assert!(names.contains(&"CARGO_PKG_NAME"), "{names:?}");
    assert!(names.contains(&"PATH"), "{names:?}");
    assert!(!names.contains(&"CARGO_MANIFEST_DIR"), "{names:?}");
    // The basics, and what sh sets itself.
    let allowed = [
        "CARGO_PKG_NAME",
        "PATH",
        "HOME",
        "USER",
        "LOGNAME",
        "SHELL",
        "TERM",
        "TZ",
        "TMPDIR",
        "LANG",
        "LANGUAGE",
        "PWD",
        "OLDPWD",
        "SHLVL",
        "_",
    ];
    for name in &names {
        assert!(
            allowed.contains(name) || name.starts_with("LC_"),
            "{name} passed the allow list"
        );
    }
}
