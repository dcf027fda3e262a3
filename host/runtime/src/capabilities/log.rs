//! The `log` capability: guest messages into `tracing`, tagged with tenant, skill and request
//! id, bounded per message and per invocation so a guest cannot flood the host's logs.

use std::sync::Arc;

use wasmtime::component::{HasData, Linker};

use crate::bindings::omniforge::skill::log::{self, Level};
use crate::invocation::InvocationContext;

/// Bounds on what one invocation may log. Messages over a bound are dropped and counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LogLimits {
    /// Longer messages are cut at this many bytes (on a character boundary).
    pub max_message_bytes: usize,
    /// Messages per invocation.
    pub max_messages: u32,
    /// Bytes per invocation, over all messages.
    pub max_total_bytes: usize,
}

impl Default for LogLimits {
    fn default() -> Self {
        Self {
            max_message_bytes: 4096,
            max_messages: 256,
            max_total_bytes: 64 * 1024,
        }
    }
}

/// Per-invocation state of the `log` capability.
pub(crate) struct LogState {
    meta: Arc<InvocationContext>,
    limits: LogLimits,
    written: u32,
    dropped: u32,
    bytes: usize,
}

impl LogState {
    pub(crate) fn new(meta: Arc<InvocationContext>, limits: LogLimits) -> Self {
        Self {
            meta,
            limits,
            written: 0,
            dropped: 0,
            bytes: 0,
        }
    }

    pub(crate) fn written(&self) -> u32 {
        self.written
    }

    pub(crate) fn dropped(&self) -> u32 {
        self.dropped
    }
}

/// Borrowed view of [`LogState`] that implements the generated `log::Host`.
pub(crate) struct GuestLog<'a>(pub(crate) &'a mut LogState);

struct LogCapability;

impl HasData for LogCapability {
    type Data<'a> = GuestLog<'a>;
}

/// Adds `omniforge:skill/log` to the linker.
pub(crate) fn add_to_linker<T: Send + 'static>(
    linker: &mut Linker<T>,
    get: fn(&mut T) -> GuestLog<'_>,
) -> wasmtime::Result<()> {
    log::add_to_linker::<T, LogCapability>(linker, get)
}

impl log::Host for GuestLog<'_> {
    fn log(&mut self, level: Level, message: String) -> wasmtime::Result<()> {
        let state = &mut *self.0;
        let message = truncate(&message, state.limits.max_message_bytes);
        if state.written >= state.limits.max_messages
            || state.bytes + message.len() > state.limits.max_total_bytes
        {
            state.dropped = state.dropped.saturating_add(1);
            return Ok(());
        }
        state.written += 1;
        state.bytes += message.len();
        let meta = &state.meta;
        macro_rules! emit {
            ($level:ident) => {
                tracing::$level!(
                    target: "omniforge::guest",
                    tenant = %meta.tenant,
                    skill = %meta.skill,
                    version = %meta.version,
                    request_id = %meta.request_id,
                    "{message}"
                )
            };
        }
        match level {
            Level::Trace => emit!(trace),
            Level::Debug => emit!(debug),
            Level::Info => emit!(info),
            Level::Warn => emit!(warn),
            Level::Error => emit!(error),
        }
        Ok(())
    }
}

/// `message` cut to at most `max` bytes without splitting a character.
fn truncate(message: &str, max: usize) -> &str {
    if message.len() <= max {
        return message;
    }
    let mut end = max;
    while !message.is_char_boundary(end) {
        end -= 1;
    }
    &message[..end]
}

#[cfg(test)]
mod tests {
    use super::truncate;

    #[test]
    fn truncation_keeps_whole_characters() {
        assert_eq!(truncate("héllo", 2), "h");
        assert_eq!(truncate("héllo", 3), "hé");
        assert_eq!(truncate("short", 100), "short");
    }
}
