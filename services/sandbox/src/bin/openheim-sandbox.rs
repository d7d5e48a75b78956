//! `openheim-sandbox`: the launcher alone, in a binary small enough to
//! start quickly. `openheim` and the service binaries start every shell
//! command and stdio MCP server through a sealed copy of it when it sits
//! beside them (`openheim_sandbox::sealed_launcher`), else through
//! themselves.

use std::process::ExitCode;

use openheim_sandbox::launcher::enter_if_requested;
use openheim_sandbox::sealed_launcher::MARKER;

/// What tells the binaries that this file is a launcher of their protocol.
#[used]
static PROTOCOL_MARKER: &str = MARKER;

fn main() -> ExitCode {
    // Runs the launcher and exits when this process was started as one.
    enter_if_requested();
    eprintln!(
        "openheim-sandbox starts the commands openheim runs for the model, \
         each in its own namespaces; openheim runs it, not people"
    );
    ExitCode::from(2)
}
