//! One table of exit codes for every command (also in `omniforge --help` and the README):
//!
//! | code | meaning |
//! | --- | --- |
//! | 0 | success |
//! | 1 | the skill returned its own error or refused its input; a `skill test` case failed |
//! | 2 | bad arguments, input, configuration, files or packages; a request the server refused as invalid; any other failure |
//! | 3 | a limit: fuel, memory, output, time, quota, rate or concurrency |
//! | 4 | the skill crashed (trapped) |
//! | 5 | the server refused the credentials or their permissions (401, 403) |
//! | 6 | the server could not be reached, failed (5xx), or was still compiling the skill |

use std::process::ExitCode;

/// The skill's own error, refused input, failed test cases.
pub const SKILL_ERROR: u8 = 1;
/// Bad arguments, input, configuration, files or packages; anything else that failed.
pub const USAGE: u8 = 2;
/// A limit was hit.
pub const LIMIT: u8 = 3;
/// The skill crashed.
pub const TRAP: u8 = 4;
/// The server refused the credentials or their permissions.
pub const AUTH: u8 = 5;
/// The server could not be reached, failed, or was still compiling.
pub const UNAVAILABLE: u8 = 6;

/// The table, for `--help` texts.
pub const TABLE: &str = "Exit status: 0 ok, 1 the skill's own error, refused input or failed \
    test cases, 2 bad arguments, files, packages or requests, 3 a limit (fuel, memory, time, \
    output, quota, rate), 4 the skill crashed, 5 credentials or permissions refused, 6 server \
    unreachable, failing or still compiling.";

/// An error meaning "the skill itself said no" (its own error, refused input, a failed test
/// case), so the command exits with [`SKILL_ERROR`].
#[derive(Debug)]
pub struct SkillFailed(pub String);

impl std::fmt::Display for SkillFailed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for SkillFailed {}

/// The exit code of a failed command.
pub fn code_of(error: &anyhow::Error) -> u8 {
    if error.downcast_ref::<SkillFailed>().is_some() {
        return SKILL_ERROR;
    }
    match error.downcast_ref::<crate::remote::Problem>() {
        Some(problem) => problem.exit_code(),
        None => USAGE,
    }
}

/// Prints an error as one line (with its causes) and exits with its code from the table.
pub fn report(result: anyhow::Result<()>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(code_of(&e))
        }
    }
}
