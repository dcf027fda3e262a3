//! What an invocation produced: its outcome and the resources it used.
//!
//! Error policy: every way an invocation can end is a variant of [`Outcome`], never a Rust
//! error and never a panic of the host. A skill's own `skill-error` is [`Outcome::GuestError`];
//! running into a limit is one of the `*Limit`/`FuelExhausted`/`Timeout` variants; anything
//! else the guest did wrong (a crash, a malformed result) is [`Outcome::Trap`]. Entry points
//! map these to HTTP statuses and exit codes through [`Outcome::code`].

use std::fmt;

use serde::Serialize;

/// How one invocation ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum Outcome {
    /// The skill returned this JSON output.
    Ok {
        /// The output, JSON text.
        output: String,
    },
    /// The input was rejected before the skill ran.
    InvalidInput {
        /// Why the input is not acceptable.
        message: String,
    },
    /// The skill returned its own error.
    GuestError {
        /// Which `skill-error` case it returned.
        kind: GuestErrorKind,
        /// The skill's message.
        message: String,
    },
    /// The skill used up its CPU budget.
    FuelExhausted {
        /// The budget, in fuel units.
        limit: u64,
    },
    /// The skill tried to use more memory than it may.
    MemoryLimit {
        /// The limit, in bytes.
        limit_bytes: u64,
    },
    /// The skill returned more output than it may.
    OutputLimit {
        /// Size of the output it returned.
        size_bytes: u64,
        /// The limit, in bytes.
        limit_bytes: u64,
    },
    /// The invocation ran past its wall-clock deadline.
    Timeout {
        /// The deadline, in milliseconds after the start.
        limit_ms: u64,
    },
    /// The tenant (or the whole runtime) already runs as many invocations as it may.
    ConcurrencyLimit {
        /// What was full.
        message: String,
    },
    /// The host's memory budget for running sandboxes had no room for this invocation's
    /// memory limit within the admission wait. Nothing ran.
    MemoryBudget {
        /// The memory limit the invocation needed reserved, in bytes.
        requested_bytes: u64,
        /// The host's whole budget, in bytes.
        budget_bytes: u64,
    },
    /// The guest crashed (a wasm trap, a panic, a stack overflow) or broke the contract.
    Trap {
        /// The trap, with the guest's panic message when it wrote one.
        message: String,
    },
    /// Whoever started the invocation cancelled it (a task's cancel) before it ended.
    Canceled,
}

impl Outcome {
    /// The stable snake_case name of the outcome (`ok`, `guest_error`, `fuel_exhausted`, …).
    pub fn code(&self) -> &'static str {
        match self {
            Self::Ok { .. } => "ok",
            Self::InvalidInput { .. } => "invalid_input",
            Self::GuestError { .. } => "guest_error",
            Self::FuelExhausted { .. } => "fuel_exhausted",
            Self::MemoryLimit { .. } => "memory_limit",
            Self::OutputLimit { .. } => "output_limit",
            Self::Timeout { .. } => "timeout",
            Self::ConcurrencyLimit { .. } => "concurrency_limit",
            Self::MemoryBudget { .. } => "memory_budget",
            Self::Trap { .. } => "trap",
            Self::Canceled => "canceled",
        }
    }

    /// The output, if the invocation succeeded.
    pub fn output(&self) -> Option<&str> {
        match self {
            Self::Ok { output } => Some(output),
            _ => None,
        }
    }

    /// Whether the invocation ended because it hit one of its limits.
    pub fn is_limit(&self) -> bool {
        matches!(
            self,
            Self::FuelExhausted { .. }
                | Self::MemoryLimit { .. }
                | Self::OutputLimit { .. }
                | Self::Timeout { .. }
                | Self::ConcurrencyLimit { .. }
                | Self::MemoryBudget { .. }
        )
    }

    /// Whether the invocation was refused before any guest code ran (so it used nothing).
    pub fn refused_before_running(&self) -> bool {
        matches!(
            self,
            Self::ConcurrencyLimit { .. } | Self::MemoryBudget { .. }
        )
    }
}

impl fmt::Display for Outcome {
    /// One line, for logs and the CLI.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Ok { .. } => write!(f, "ok"),
            Self::InvalidInput { message } => write!(f, "invalid input: {message}"),
            Self::GuestError { kind, message } => write!(f, "skill error ({kind}): {message}"),
            Self::FuelExhausted { limit } => write!(f, "fuel exhausted (limit {limit})"),
            Self::MemoryLimit { limit_bytes } => {
                write!(f, "memory limit exceeded (limit {limit_bytes} bytes)")
            }
            Self::OutputLimit {
                size_bytes,
                limit_bytes,
            } => write!(
                f,
                "output limit exceeded ({size_bytes} bytes, limit {limit_bytes} bytes)"
            ),
            Self::Timeout { limit_ms } => write!(f, "timed out after {limit_ms} ms"),
            Self::ConcurrencyLimit { message } => write!(f, "concurrency limit: {message}"),
            Self::MemoryBudget {
                requested_bytes,
                budget_bytes,
            } => write!(
                f,
                "the host's memory budget for running skills ({budget_bytes} bytes) has no \
                 room for this invocation's {requested_bytes} bytes now"
            ),
            Self::Trap { message } => write!(f, "skill trapped: {message}"),
            Self::Canceled => write!(f, "canceled before it finished"),
        }
    }
}

/// The case of a skill's own `skill-error`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum GuestErrorKind {
    /// `invalid-input`: the input is not acceptable to the skill.
    InvalidInput,
    /// `denied`: the skill was not allowed to do something it needed.
    Denied,
    /// `not-found`: something the input referred to does not exist.
    NotFound,
    /// `unavailable`: a dependency of the skill is unavailable.
    Unavailable,
    /// `failed`: any other failure.
    Failed,
}

impl fmt::Display for GuestErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::InvalidInput => "invalid-input",
            Self::Denied => "denied",
            Self::NotFound => "not-found",
            Self::Unavailable => "unavailable",
            Self::Failed => "failed",
        })
    }
}

/// Resources one invocation used; reported for every outcome, feeding quotas and metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Usage {
    /// Fuel consumed (0 when fuel metering is off).
    pub fuel_consumed: u64,
    /// Wall-clock time from the start of the invocation to its end, in microseconds.
    pub wall_time_us: u64,
    /// Highest total size of the instance's linear memories, in bytes.
    pub peak_memory_bytes: u64,
    /// Log messages written through the `log` capability.
    pub log_messages: u32,
    /// Log messages dropped because they were over the per-invocation bounds.
    pub log_dropped: u32,
    /// Outbound HTTP requests the skill attempted.
    pub http_requests: u32,
    /// Skills it called, with every call beneath them (its fuel and time include theirs).
    pub skill_calls: u32,
}

/// The result of [`Runtime::invoke`](crate::Runtime::invoke).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct InvocationReport {
    /// How it ended.
    #[serde(flatten)]
    pub outcome: Outcome,
    /// What it used.
    pub usage: Usage,
    /// The start of what the guest wrote to stderr (bounded), for diagnosing failures.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub stderr: String,
}
