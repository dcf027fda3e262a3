//! The `log` capability: guest messages into `tracing`, tagged with tenant, skill and request
//! id, bounded per message, per invocation and per tenant per second, so a guest cannot flood
//! the host's logs.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use wasmtime::component::{HasData, Linker};

use crate::bindings::omniforge::skill::log::{self, Level};
use crate::capabilities::HasCapability;
use crate::capabilities::secrets::Redactions;
use crate::invocation::{GuestLogLine, InvocationContext, LogSink, TenantId};
use crate::outcome::Usage;
use crate::state::InvocationState;

/// Bounds on what skills may log. Messages over a bound are dropped and counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LogLimits {
    /// Longer messages are cut at this many bytes (on a character boundary).
    pub max_message_bytes: usize,
    /// Messages per invocation.
    pub max_messages: u32,
    /// Bytes per invocation, over all messages.
    pub max_total_bytes: usize,
    /// Messages per second per tenant, over all its invocations in this runtime.
    pub tenant_messages_per_second: u32,
    /// Messages a tenant may write in a burst above its per-second rate.
    pub tenant_burst: u32,
}

impl Default for LogLimits {
    fn default() -> Self {
        Self {
            max_message_bytes: 4096,
            max_messages: 256,
            max_total_bytes: 64 * 1024,
            tenant_messages_per_second: 1000,
            tenant_burst: 5000,
        }
    }
}

/// Per-tenant token buckets bounding the log rate across invocations, so a tenant calling a
/// chatty skill thousands of times a second cannot flood the host's logs either.
#[derive(Debug)]
pub(crate) struct TenantLogRate {
    buckets: Mutex<HashMap<TenantId, Bucket>>,
    per_second: f64,
    burst: f64,
}

#[derive(Debug)]
struct Bucket {
    tokens: f64,
    updated: Instant,
}

impl TenantLogRate {
    pub(crate) fn new(limits: &LogLimits) -> Self {
        Self {
            buckets: Mutex::default(),
            per_second: f64::from(limits.tenant_messages_per_second),
            burst: f64::from(limits.tenant_burst),
        }
    }

    /// Takes one message from the tenant's bucket; `false` if it is empty.
    pub(crate) fn try_take(&self, tenant: &TenantId) -> bool {
        let now = Instant::now();
        let mut buckets = self.buckets.lock().unwrap_or_else(|e| e.into_inner());
        let bucket = buckets.entry(tenant.clone()).or_insert(Bucket {
            tokens: self.burst,
            updated: now,
        });
        let refill = now.duration_since(bucket.updated).as_secs_f64() * self.per_second;
        bucket.tokens = (bucket.tokens + refill).min(self.burst);
        bucket.updated = now;
        if bucket.tokens < 1.0 {
            return false;
        }
        bucket.tokens -= 1.0;
        true
    }
}

/// Per-invocation state of the `log` capability.
pub(crate) struct LogState {
    meta: Arc<InvocationContext>,
    redactions: Redactions,
    limits: LogLimits,
    rate: Arc<TenantLogRate>,
    sink: Option<LogSink>,
    written: u32,
    dropped: u32,
    bytes: usize,
}

impl LogState {
    pub(crate) fn new(
        meta: Arc<InvocationContext>,
        limits: LogLimits,
        rate: Arc<TenantLogRate>,
        sink: Option<LogSink>,
        redactions: Redactions,
    ) -> Self {
        Self {
            meta,
            redactions,
            limits,
            rate,
            sink,
            written: 0,
            dropped: 0,
            bytes: 0,
        }
    }
}

impl super::Capability for LogState {
    fn add_to_linker(linker: &mut Linker<InvocationState>) -> wasmtime::Result<()> {
        log::add_to_linker::<InvocationState, LogCapability>(linker, |s| {
            GuestLog(HasCapability::<LogState>::capability(s))
        })
    }

    fn new(setup: &super::Setup<'_>) -> Self {
        Self::new(
            Arc::clone(setup.context),
            setup.invoker.config.log,
            Arc::clone(&setup.invoker.log_rate),
            setup.task.and_then(|task| task.logs.clone()),
            setup.redactions.clone(),
        )
    }

    fn report(&self, usage: &mut Usage) {
        usage.log_messages = self.written;
        usage.log_dropped = self.dropped;
    }
}

/// Borrowed view of [`LogState`] that implements the generated `log::Host`.
struct GuestLog<'a>(&'a mut LogState);

struct LogCapability;

impl HasData for LogCapability {
    type Data<'a> = GuestLog<'a>;
}

impl log::Host for GuestLog<'_> {
    fn log(&mut self, level: Level, message: String) -> wasmtime::Result<()> {
        let state = &mut *self.0;
        // Masked before it is cut, so no part of a value survives at the cut.
        let masked = state.redactions.mask(&message);
        let message = truncate(&masked, state.limits.max_message_bytes);
        if state.written >= state.limits.max_messages
            || state.bytes + message.len() > state.limits.max_total_bytes
            || !state.rate.try_take(&state.meta.tenant)
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
        if let Some(sink) = &state.sink {
            let level = match level {
                Level::Trace => "trace",
                Level::Debug => "debug",
                Level::Info => "info",
                Level::Warn => "warn",
                Level::Error => "error",
            };
            // A closed sink means the task's worker stopped listening; the host log keeps it.
            let _ = sink.send(GuestLogLine {
                level,
                message: message.to_owned(),
            });
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
    use super::*;

    #[test]
    fn truncation_keeps_whole_characters() {
        assert_eq!(truncate("héllo", 2), "h");
        assert_eq!(truncate("héllo", 3), "hé");
        assert_eq!(truncate("short", 100), "short");
    }

    #[test]
    fn the_tenant_rate_allows_a_burst_then_refills() {
        let rate = TenantLogRate::new(&LogLimits {
            tenant_messages_per_second: 1000,
            tenant_burst: 3,
            ..LogLimits::default()
        });
        let (a, b) = (TenantId::new("a"), TenantId::new("b"));
        assert!((0..3).all(|_| rate.try_take(&a)));
        assert!(!rate.try_take(&a), "the burst is spent");
        assert!(rate.try_take(&b), "other tenants have their own bucket");
        std::thread::sleep(std::time::Duration::from_millis(5));
        assert!(rate.try_take(&a), "refilled at 1000 per second");
    }
}
