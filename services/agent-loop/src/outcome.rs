//! [`Outcome`], the result of one tool call wherever it ran (tool-executor,
//! mcp-broker, the turn's caller, memory, a sub-agent), before the turn caps
//! and stores it. Below the turn: the modules that produce outcomes do not
//! depend on the turn that consumes them.

use openheim_proto::common::v1::{FileDiff, Image};

/// The result of one tool call, before it is capped and stored.
#[derive(Debug, Default)]
pub(crate) struct Outcome {
    pub text: String,
    pub is_error: bool,
    pub raw_output_json: String,
    pub diffs: Vec<FileDiff>,
    /// Images for the model (stored with the result, not shown in updates).
    pub images: Vec<Image>,
}

impl Outcome {
    pub(crate) fn error(text: impl Into<String>) -> Self {
        Self {
            text: text.into(),
            is_error: true,
            ..Self::default()
        }
    }
}
