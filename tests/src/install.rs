//! A throwaway openheim installation: home (config, identity, skills),
//! workspace, and helpers to run the CLI in it.

use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::{Duration, Instant};

use crate::{MockLlm, ServiceProcess, bin_path};

pub const IDENTITY: &str = "You are Test Identity ALPHA-7.";
pub const SKILL_A: &str = "Skill A says: always be brief.";
pub const SKILL_B: &str = "Skill B says: quote tool results.";
const RUN_TIMEOUT: Duration = Duration::from_secs(60);

pub struct Install {
    pub root: tempfile::TempDir,
}

impl Install {
    /// Home with `system.md` and skills `a` and `b`, an empty workspace, and
    /// a config pointing at `mock`; `extra` is appended to the config.
    pub fn new(mock: &MockLlm, extra: &str) -> Self {
        Self::new_in(tempfile::tempdir().unwrap(), mock, extra)
    }

    /// Like [`Install::new`], in `root`: e.g. a directory outside the temp
    /// directories confined commands may always write to, for tests of
    /// what they may not write.
    pub fn new_in(root: tempfile::TempDir, mock: &MockLlm, extra: &str) -> Self {
        let install = Self { root };
        std::fs::create_dir_all(install.home().join("skills")).unwrap();
        std::fs::create_dir_all(install.workspace()).unwrap();
        std::fs::write(install.home().join("system.md"), IDENTITY).unwrap();
        std::fs::write(install.home().join("skills/a.md"), SKILL_A).unwrap();
        std::fs::write(install.home().join("skills/b.md"), SKILL_B).unwrap();
        install.write_config(mock, extra);
        install
    }

    pub fn write_config(&self, mock: &MockLlm, extra: &str) {
        let config = format!(
            "default_provider = \"mock\"\n{extra}\n\n[providers.mock]\nkind = \"openai_compatible\"\napi_base = \"{}\"\ndefault_model = \"mock-model\"\n",
            mock.base_url()
        );
        std::fs::write(self.home().join("config.toml"), config).unwrap();
    }

    /// Appends `lines` (e.g. `context_window = 2000`) to the mock's
    /// `[providers.mock]` table, which [`Install::write_config`] writes last.
    pub fn configure_mock_provider(&self, lines: &str) {
        let path = self.home().join("config.toml");
        let mut config = std::fs::read_to_string(&path).unwrap();
        assert!(
            config.contains("[providers.mock]"),
            "no [providers.mock] table in {}",
            path.display()
        );
        config.push_str(lines);
        config.push('\n');
        std::fs::write(path, config).unwrap();
    }

    pub fn home(&self) -> PathBuf {
        self.root.path().join("home")
    }

    pub fn workspace(&self) -> PathBuf {
        self.root.path().join("workspace")
    }

    pub fn history_file(&self, session_id: &str) -> PathBuf {
        self.home()
            .join("history")
            .join(format!("{session_id}.jsonl"))
    }

    /// Runs `openheim <args>` in the workspace with this home.
    pub async fn openheim(&self, args: &[&str]) -> Output {
        self.openheim_with_env(args, &[]).await
    }

    /// Like [`Install::openheim`], with extra environment variables.
    pub async fn openheim_with_env(&self, args: &[&str], env: &[(&str, &str)]) -> Output {
        self.openheim_with_env_removed(args, env, &[]).await
    }

    /// Like [`Install::openheim_with_env`], without the variables `removed`
    /// (`RUST_LOG` included: it is set to `warn` otherwise).
    pub async fn openheim_with_env_removed(
        &self,
        args: &[&str],
        env: &[(&str, &str)],
        removed: &[&str],
    ) -> Output {
        let mut command = tokio::process::Command::new(bin_path("openheim"));
        command
            .args(args)
            .current_dir(self.workspace())
            .env("OPENHEIM_HOME", self.home())
            .env("HOME", self.root.path())
            .env_remove("OPENHEIM_CONFIG")
            .env("RUST_LOG", "warn")
            .envs(env.iter().copied())
            .kill_on_drop(true);
        for name in removed {
            command.env_remove(name);
        }
        tokio::time::timeout(RUN_TIMEOUT, command.output())
            .await
            .expect("openheim did not finish in time")
            .expect("openheim could not be started")
    }

    /// Like [`Install::openheim`], with `input` on the process's stdin.
    pub async fn openheim_with_stdin(&self, args: &[&str], input: &str) -> Output {
        use tokio::io::AsyncWriteExt;
        let mut command = tokio::process::Command::new(bin_path("openheim"));
        command
            .args(args)
            .current_dir(self.workspace())
            .env("OPENHEIM_HOME", self.home())
            .env("HOME", self.root.path())
            .env_remove("OPENHEIM_CONFIG")
            .env("RUST_LOG", "warn")
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .kill_on_drop(true);
        let mut child = command.spawn().expect("openheim could not be started");
        let mut stdin = child.stdin.take().unwrap();
        stdin.write_all(input.as_bytes()).await.unwrap();
        drop(stdin);
        tokio::time::timeout(RUN_TIMEOUT, child.wait_with_output())
            .await
            .expect("openheim did not finish in time")
            .expect("openheim could not be waited for")
    }

    /// Starts the four services as separate processes, configured from this
    /// install, and points the CLI config at the agent-loop.
    pub async fn start_cluster(&self, mock: &MockLlm, extra: &str) -> Cluster {
        self.start_cluster_with_env(mock, extra, "", &[]).await
    }

    /// Like [`Install::start_cluster`]; `provider_lines` go into the mock's
    /// `[providers.mock]` table and every service gets `env` as well.
    pub async fn start_cluster_with_env(
        &self,
        mock: &MockLlm,
        extra: &str,
        provider_lines: &str,
        env: &[(&str, &str)],
    ) -> Cluster {
        let home = self.home();
        let home = home.to_str().unwrap();
        let workspace = self.workspace();
        let workspace = workspace.to_str().unwrap();
        let shared = self.root.path().join("services.toml");
        let base = format!(
            "default_provider = \"mock\"\nwork_dir = \"{workspace}\"\ndata_dir = \"{home}\"\n{extra}\n\n[providers.mock]\nkind = \"openai_compatible\"\napi_base = \"{}\"\ndefault_model = \"mock-model\"\n{provider_lines}\n",
            mock.base_url()
        );
        std::fs::write(&shared, &base).unwrap();
        let shared = shared.to_str().unwrap();
        let mut service_env = vec![("OPENHEIM_CONFIG", shared), ("OPENHEIM_HOME", home)];
        service_env.extend_from_slice(env);
        let llm = ServiceProcess::spawn("openheim-llm-proxy", &[], &service_env).await;
        let tools = ServiceProcess::spawn("openheim-tool-executor", &[], &service_env).await;
        let mcp = ServiceProcess::spawn("openheim-mcp-broker", &[], &service_env).await;
        let loop_config = self.root.path().join("agent-loop.toml");
        std::fs::write(
            &loop_config,
            format!(
                "{base}\n[services]\nllm_proxy = \"{}\"\ntool_executor = \"{}\"\nmcp_broker = \"{}\"\n",
                llm.url(),
                tools.url(),
                mcp.url()
            ),
        )
        .unwrap();
        let loop_config = loop_config.to_str().unwrap();
        let mut agent_env = vec![("OPENHEIM_CONFIG", loop_config), ("OPENHEIM_HOME", home)];
        agent_env.extend_from_slice(env);
        let agent = ServiceProcess::spawn("openheim-agent-loop", &[], &agent_env).await;
        // The CLI only needs to know where the agent loop is.
        std::fs::write(
            self.home().join("config.toml"),
            format!("[services]\nagent_loop = \"{}\"\n", agent.url()),
        )
        .unwrap();
        Cluster {
            _processes: vec![llm, tools, mcp, agent],
        }
    }
}

pub struct Cluster {
    _processes: Vec<ServiceProcess>,
}

impl Cluster {
    /// The process id of service `name` (e.g. `openheim-llm-proxy`).
    pub fn pid(&self, name: &str) -> Option<u32> {
        self._processes
            .iter()
            .find(|p| p.name() == name)
            .and_then(ServiceProcess::id)
    }

    /// The `host:port` service `name` listens on.
    pub fn addr(&self, name: &str) -> Option<String> {
        self._processes
            .iter()
            .find(|p| p.name() == name)
            .map(ServiceProcess::addr)
    }

    /// Stops the services the way an orchestrator does (SIGTERM) and waits
    /// for them to exit, e.g. so they flush their telemetry.
    pub async fn terminate(mut self) {
        for process in &mut self._processes {
            process.terminate().await;
        }
    }
}

pub fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

pub fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// The session id `openheim run` reports on stderr.
pub fn session_id(output: &Output) -> String {
    stderr(output)
        .lines()
        .find_map(|l| l.strip_prefix("session: "))
        .unwrap_or_else(|| panic!("no session id in stderr:\n{}", stderr(output)))
        .trim()
        .to_owned()
}

/// Records of a session log, parsed.
pub fn history(path: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// Wall time of one `openheim` run, for the benchmark.
pub async fn timed(install: &Install, args: &[&str]) -> (Output, Duration) {
    let start = Instant::now();
    let output = install.openheim(args).await;
    (output, start.elapsed())
}
