//! openheim's configuration: the typed schema every service and the CLI share,
//! its defaults, layering (built-in defaults < config file < `OPENHEIM_*`
//! environment < CLI overrides) and validation that reports every problem at
//! once with where it came from.
//!
//! Libraries never read the environment themselves: the binary calls
//! [`load`] with the environment it wants considered and passes the resulting
//! [`Config`] (or a section of it) to the services.

pub mod agents;
pub mod hooks;
mod load;
mod persist;
pub mod pricing;
pub mod redact;
mod schema;
mod secret;
mod thinking;
mod users;
mod validate;
pub mod vision;

pub use agents::{
    AgentProfile, AgentsConfig, InvalidAgentName, ProfileFileError, check_agent_name,
    parse_profile_file,
};
pub use hooks::{HookConfig, HooksConfig, OnError};
pub use load::{ConfigError, ConfigProblem, LoadOptions, load};
pub use persist::{PersistError, set_file_value};
pub use pricing::{Price, Pricing, Tokens};
pub use redact::{redact_url, redact_urls_in};
pub use schema::*;
pub use secret::Secret;
pub use thinking::{BadThinking, Effort, MIN_THINKING_BUDGET, Thinking, ThinkingStyle};
pub use users::*;
pub use validate::{InvalidValue, check_skill_name, is_loopback_url};
