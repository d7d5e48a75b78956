//! How a binary holds its secrets: the environment is read once, and then
//! every variable a deny rule of [`openheim_sandbox::EnvPolicy`] matches
//! (provider keys, tokens, openheim's own settings) is removed from the
//! process — from the variable table and from the memory that
//! `/proc/PID/environ` shows — and the process is made non-dumpable, so its
//! `/proc` entries (`environ`, `maps`, `mem`, …) are closed to other
//! processes of the same user that lack `CAP_SYS_PTRACE`. Both must happen
//! before any thread exists: [`secure`] checks that and refuses otherwise.
//!
//! The threat model is in `docs/security.md`.

use std::collections::BTreeMap;
use std::ffi::OsStr;

use openheim_config::Config;
use openheim_sandbox::EnvPolicy;

/// The process environment, read once at start-up. Everything that needs a
/// variable later reads it from here, not from the process.
#[derive(Clone, Default)]
pub struct Environment {
    vars: BTreeMap<String, String>,
}

impl std::fmt::Debug for Environment {
    /// Names only: values may be secrets.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_set().entries(self.vars.keys()).finish()
    }
}

impl Environment {
    /// This process's environment. Variables whose name or value is not
    /// UTF-8 are left out (no setting of ours is spelled that way).
    pub fn capture() -> Self {
        let vars = std::env::vars_os()
            .filter_map(|(name, value)| Some((name.into_string().ok()?, value.into_string().ok()?)))
            .collect();
        Self { vars }
    }

    /// An environment given as pairs (tests, embedders).
    pub fn from_pairs<K: Into<String>, V: Into<String>>(
        pairs: impl IntoIterator<Item = (K, V)>,
    ) -> Self {
        let vars = pairs
            .into_iter()
            .map(|(k, v)| (k.into(), v.into()))
            .collect();
        Self { vars }
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        self.vars.get(name).map(String::as_str)
    }

    pub fn vars(&self) -> &BTreeMap<String, String> {
        &self.vars
    }

    /// The variables `policy` does not deny: what processes openheim starts
    /// may inherit (each start narrows it further with the allow list).
    pub fn without_denied(&self, policy: &EnvPolicy) -> BTreeMap<String, String> {
        self.vars
            .iter()
            .filter(|(name, _)| !policy.denies(OsStr::new(name.as_str())))
            .map(|(name, value)| (name.clone(), value.clone()))
            .collect()
    }
}

/// Why the process could not be secured.
#[derive(Debug, thiserror::Error)]
pub enum SecureError {
    #[error(
        "secrets must be removed from the environment before threads start, but this process already runs {0} threads"
    )]
    Threaded(usize),
    #[error("cannot count this process's threads: {0}")]
    Unknown(std::io::Error),
}

/// What [`secure`] did, for the log once logging is up.
#[derive(Debug, Default)]
pub struct Secured {
    /// Names removed from the environment.
    pub scrubbed: Vec<String>,
    /// Whether the process is now non-dumpable.
    pub non_dumpable: bool,
}

/// Removes every variable `config`'s environment policy denies from this
/// process (and from what `/proc/self/environ` shows), and makes the process
/// non-dumpable. Call after the configuration is loaded from the captured
/// [`Environment`] and before any thread starts (the Tokio runtime included).
pub fn secure(config: &Config) -> Result<Secured, SecureError> {
    let policy = EnvPolicy::from_config(config);
    let denied: Vec<String> = std::env::vars_os()
        .map(|(name, _)| name)
        .filter(|name| policy.denies(name))
        .map(|name| name.to_string_lossy().into_owned())
        .collect();
    os::secure(denied)
}

/// Caps the C allocator at two arenas, unless `MALLOC_ARENA_MAX` says
/// otherwise. glibc gives threads that allocate at the same time arenas of
/// their own (up to eight per core), and each keeps the peak of what passed
/// through it: the history-sized buffers of every turn, built on whichever
/// runtime or blocking-pool thread ran it, made a long session's memory
/// grow far faster than its history (docs/performance.md, long sessions).
/// Call while the process has one thread.
pub fn limit_malloc_arenas() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    if std::env::var_os("MALLOC_ARENA_MAX").is_none() {
        set_arena_max(2);
    }
}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[allow(unsafe_code)]
fn set_arena_max(arenas: libc::c_int) {
    // SAFETY: `mallopt` only sets an allocator parameter; it is called
    // before the process starts other threads. A refusal (0) leaves
    // glibc's default, which is correct, only larger.
    let _accepted = unsafe { libc::mallopt(libc::M_ARENA_MAX, arenas) };
}

#[cfg(target_os = "linux")]
mod os {
    use std::ffi::CString;

    use super::{SecureError, Secured};

    pub(super) fn secure(denied: Vec<String>) -> Result<Secured, SecureError> {
        let threads = std::fs::read_dir("/proc/self/task")
            .map_err(SecureError::Unknown)?
            .count();
        if threads != 1 {
            return Err(SecureError::Threaded(threads));
        }
        for name in &denied {
            scrub(name);
        }
        let non_dumpable = nix::sys::prctl::set_dumpable(false).is_ok();
        Ok(Secured {
            scrubbed: denied,
            non_dumpable,
        })
    }

    /// Overwrites `NAME=VALUE` where the C library keeps it (for variables
    /// from the start of the process: the memory `/proc/PID/environ` reads),
    /// then removes the variable.
    #[allow(unsafe_code)]
    fn scrub(name: &str) {
        let Ok(c_name) = CString::new(name) else {
            return;
        };
        // SAFETY: `secure` checked that this process runs one thread, so no
        // other code reads or changes the environment meanwhile. `getenv`
        // returns the value inside the `NAME=VALUE` string the environment
        // table points to; that string is writable memory (the initial
        // environment block, or the C library's own copy for variables set
        // later) and continues for `strlen` bytes after the value pointer,
        // and starts `name.len() + 1` bytes before it. Nothing holds a
        // reference into it: Rust's `std::env` copies what it reads.
        unsafe {
            let value = libc::getenv(c_name.as_ptr());
            if !value.is_null() {
                let value_len = libc::strlen(value);
                let entry = value.sub(name.len() + 1);
                std::ptr::write_bytes(entry, 0, name.len() + 1 + value_len);
            }
            std::env::remove_var(name);
        }
    }
}

#[cfg(not(target_os = "linux"))]
mod os {
    use super::{SecureError, Secured};

    /// Elsewhere there is no `/proc` to protect and no safe moment to edit
    /// the environment is verified: the variables stay, children still
    /// never inherit them (their environment is built explicitly).
    pub(super) fn secure(_denied: Vec<String>) -> Result<Secured, SecureError> {
        Ok(Secured::default())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_shows_names_only() {
        let env = Environment::from_pairs([("OPENAI_API_KEY", "sk-secret"), ("PATH", "/bin")]);
        let shown = format!("{env:?}");
        assert!(
            shown.contains("OPENAI_API_KEY") && !shown.contains("sk-secret"),
            "{shown}"
        );
    }

    #[test]
    fn children_start_without_what_is_denied() {
        let mut config = Config::default();
        config.providers.insert(
            "corp".to_owned(),
            openheim_config::ProviderConfig {
                env_var: Some("CORP_LLM".to_owned()),
                ..openheim_config::ProviderConfig::default()
            },
        );
        let env = Environment::from_pairs([
            ("CORP_LLM", "k1"),
            ("GITHUB_TOKEN", "k2"),
            ("OPENHEIM_HOME", "/h"),
            ("PATH", "/bin"),
        ]);
        let kept = env.without_denied(&EnvPolicy::from_config(&config));
        assert_eq!(kept.keys().collect::<Vec<_>>(), ["PATH"]);
    }

    #[test]
    fn a_threaded_process_is_refused() {
        let _other = std::thread::spawn(|| std::thread::sleep(std::time::Duration::from_secs(2)));
        let error = secure(&Config::default()).unwrap_err();
        assert!(matches!(error, SecureError::Threaded(_)), "{error}");
    }
}
