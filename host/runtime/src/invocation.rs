//! What a caller asks the runtime to run: who for, with which input, limits and grants.

use std::collections::{BTreeMap, BTreeSet};

pub use omniforge_types::{SkillName, TenantId};
use semver::VersionReq;
use tokio_util::sync::CancellationToken;

use crate::capabilities::HttpPolicy;
use crate::limits::InvocationLimits;

/// Who an invocation runs for and what it runs; passed to the skill and tagged on its logs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvocationContext {
    /// The tenant the invocation runs for.
    pub tenant: TenantId,
    /// The skill.
    pub skill: SkillName,
    /// Exact version of the skill.
    pub version: String,
    /// Request id for correlating logs.
    pub request_id: String,
    /// The W3C `traceparent` of the span the invocation runs under, when traces are on:
    /// sent on the skill's outbound HTTP requests that carry none of their own, so the
    /// services a skill calls join the trace.
    pub trace_parent: Option<String>,
}

/// Capabilities an invocation may use, beyond the WASI base (which grants nothing). The
/// caller computes them from the skill's manifest and the tenant's policy; the default
/// grants nothing.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Grants {
    /// Use of the key-value store, scoped to (tenant, skill).
    pub kv: bool,
    /// Outbound HTTP destinations.
    pub http: HttpPolicy,
    /// Names of the tenant's secrets it may read, as its manifest declares them.
    pub secrets: BTreeSet<String>,
    /// Skills it may call, each with the version requirement its manifest names; calls go
    /// to the runtime's [`SkillCaller`](crate::capabilities::SkillCaller).
    pub skills: BTreeMap<SkillName, VersionReq>,
}

/// One invocation to run.
#[derive(Debug, Clone)]
pub struct InvocationRequest {
    /// Who and what.
    pub context: InvocationContext,
    /// The input, JSON text.
    pub input: String,
    /// Limits; the runtime clamps them to its platform maximum.
    pub limits: InvocationLimits,
    /// Capabilities granted.
    pub grants: Grants,
    /// The skills on the call stack above this invocation, outermost first: empty for a
    /// top-level invocation. A nested invocation runs under its caller's concurrency permit
    /// (taking a second one could deadlock a tenant at its limit).
    pub callers: Vec<SkillName>,
    /// Stops the invocation when cancelled: at the guest's next yield (its next fuel yield
    /// or epoch tick, about a millisecond of guest code) or at once while it waits in a host
    /// call. It then ends `canceled` and reports what it used, like any other ending.
    pub cancel: Option<CancellationToken>,
    /// The durable task it runs for, if any.
    pub task: Option<TaskRun>,
}

/// The durable task an invocation runs for: who it is, which attempt, and where its log
/// lines go besides the host's log (the task's events).
#[derive(Debug, Clone)]
pub struct TaskRun {
    /// The task.
    pub id: omniforge_types::TaskId,
    /// Its attempt, from 1.
    pub attempt: u32,
    /// Receives each log line the skill writes that the `log` capability accepts.
    pub logs: Option<LogSink>,
}

/// Where a task's log lines go while it runs.
pub type LogSink = tokio::sync::mpsc::UnboundedSender<GuestLogLine>;

/// One log line a skill wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GuestLogLine {
    /// `trace`, `debug`, `info`, `warn` or `error`.
    pub level: &'static str,
    /// The message, cut to the log limits.
    pub message: String,
}
