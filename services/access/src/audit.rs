//! The audit trail of a shared server (docs/security.md, "Audit"): one
//! structured record per login, session operation, tool call that changes
//! files or runs a command, permission decision and denied request. Every
//! record is emitted here, by [`record`], as a `tracing` event of target
//! `audit` at level `INFO` with the fields `who`, `what`,
//! `result`, `session`, `ip`, `detail` and
//! `at_ms`; with OpenTelemetry export on, the same event is a span
//! event named `audit` on the current span (the request's or the turn's).
//!
//! A record names things, never contents: no prompt, no file contents, no
//! command line, no token. `detail` is a tool's or limit's name or a
//! route, chosen by the callers below.

use std::net::IpAddr;
use std::time::{SystemTime, UNIX_EPOCH};

/// What happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event {
    /// A request presented credentials (successful or not).
    Login,
    SessionCreate,
    SessionLoad,
    SessionResume,
    SessionDelete,
    /// A tool call that writes files or runs a command.
    ToolCall,
    /// The permission gate's answer to a tool call.
    Permission,
    /// Authorization refused a request (answered as not found or forbidden).
    AccessDenied,
    /// A per-user limit refused a request.
    LimitExceeded,
}

impl Event {
    pub fn name(self) -> &'static str {
        match self {
            Self::Login => "login",
            Self::SessionCreate => "session.create",
            Self::SessionLoad => "session.load",
            Self::SessionResume => "session.resume",
            Self::SessionDelete => "session.delete",
            Self::ToolCall => "tool.call",
            Self::Permission => "permission",
            Self::AccessDenied => "access.denied",
            Self::LimitExceeded => "limit.exceeded",
        }
    }
}

/// One audit record.
#[derive(Debug, Clone, Copy)]
pub struct Record<'a> {
    /// The user id (`""` when no one could be identified).
    pub who: &'a str,
    pub what: Event,
    /// `ok`, `denied`, `failed`, or a decision (`allow_once`, `reject`, …).
    pub result: &'a str,
    pub session: Option<&'a str>,
    /// The client's address, where the emitter knows it (the gateway).
    pub ip: Option<IpAddr>,
    /// A name: the tool, the limit, the route. Never contents.
    pub detail: &'a str,
}

impl<'a> Record<'a> {
    pub fn new(who: &'a str, what: Event, result: &'a str) -> Self {
        Self {
            who,
            what,
            result,
            session: None,
            ip: None,
            detail: "",
        }
    }

    pub fn session(mut self, session: &'a str) -> Self {
        self.session = Some(session);
        self
    }

    pub fn ip(mut self, ip: Option<IpAddr>) -> Self {
        self.ip = ip;
        self
    }

    pub fn detail(mut self, detail: &'a str) -> Self {
        self.detail = detail;
        self
    }

    /// Emits the record.
    pub fn emit(&self) {
        record(self);
    }
}

/// Emits `record`: the one place audit records are written.
pub fn record(record: &Record<'_>) {
    let at_ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
    let ip = record.ip.map(|ip| ip.to_string()).unwrap_or_default();
    tracing::info!(
        target: "audit",
        who = record.who,
        what = record.what.name(),
        result = record.result,
        session = record.session.unwrap_or(""),
        ip = ip,
        detail = record.detail,
        at_ms = at_ms,
        "audit"
    );
}
