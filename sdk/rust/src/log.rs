//! Structured logging into the host's logs, tagged with the tenant, skill and request id.
//!
//! The host bounds each message's size and the number of messages per invocation; messages
//! past the bounds are dropped and counted, never an error, so logging cannot fail a skill.

use crate::bindings::omniforge::skill::log::{self as wit, Level as WitLevel};

/// A message's severity.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Level {
    /// Very detailed tracing.
    Trace,
    /// Debugging detail.
    Debug,
    /// Normal operation.
    Info,
    /// Something unexpected that the skill handled.
    Warn,
    /// A failure.
    Error,
}

/// Writes one message at `level`.
pub fn log(level: Level, message: &str) {
    let level = match level {
        Level::Trace => WitLevel::Trace,
        Level::Debug => WitLevel::Debug,
        Level::Info => WitLevel::Info,
        Level::Warn => WitLevel::Warn,
        Level::Error => WitLevel::Error,
    };
    wit::log(level, message);
}

/// Writes a trace message.
pub fn trace(message: &str) {
    log(Level::Trace, message);
}

/// Writes a debug message.
pub fn debug(message: &str) {
    log(Level::Debug, message);
}

/// Writes an info message.
pub fn info(message: &str) {
    log(Level::Info, message);
}

/// Writes a warning.
pub fn warn(message: &str) {
    log(Level::Warn, message);
}

/// Writes an error message.
pub fn error(message: &str) {
    log(Level::Error, message);
}
