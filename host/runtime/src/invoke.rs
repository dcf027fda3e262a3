//! [`Runtime::invoke`]: one invocation in a fresh store and instance, with its limits, and
//! the classification of how it ended.

use std::fmt;
use std::sync::Arc;
use std::task::Poll;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde::de::IgnoredAny;
use tokio_util::sync::CancellationToken;
use wasmtime::{Engine, PoolConcurrencyLimitError, Store, Trap, UpdateDeadline};

use crate::bindings::omniforge::skill::types::{Invocation, SkillError};
use crate::capabilities::log::TenantLogRate;
use crate::capabilities::secrets::Redactions;
use crate::capabilities::{KvStore, SecretSource, Setup, SkillCaller};
use crate::concurrency::{MemoryBudget, TenantConcurrency};
use crate::config::{DeadlineEnforcement, RuntimeConfig};
use crate::invocation::InvocationRequest;
use crate::limits::{InvocationLimits, SandboxLimiter};
use crate::outcome::{GuestErrorKind, InvocationReport, Outcome, Usage};
use crate::runtime::{LoadedSkill, Runtime};
use crate::state::{Capabilities, InvocationState, StderrCapture};

/// Raised from the epoch callback when the invocation's deadline has passed.
#[derive(Debug)]
struct DeadlineExceeded;

impl fmt::Display for DeadlineExceeded {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("the invocation's deadline passed")
    }
}

impl std::error::Error for DeadlineExceeded {}

/// What an invocation needs of the runtime: the engine, the services capabilities use and the
/// configuration. Shared (`Arc`), so that an invocation's future owns what it uses and can
/// move to a guest thread (`guests.rs`).
pub(crate) struct Invoker {
    pub(crate) engine: Engine,
    pub(crate) concurrency: Arc<TenantConcurrency>,
    pub(crate) memory_budget: Option<MemoryBudget>,
    pub(crate) kv: Arc<dyn KvStore>,
    pub(crate) secrets: Option<Arc<dyn SecretSource>>,
    pub(crate) skill_caller: Option<Arc<dyn SkillCaller>>,
    pub(crate) log_rate: Arc<TenantLogRate>,
    pub(crate) config: RuntimeConfig,
}

impl Runtime {
    /// Runs `skill` once in a fresh instance. Never fails and never panics because of the
    /// guest: every ending is an [`Outcome`], with the [`Usage`] it cost.
    ///
    /// The invocation executes on the calling task until it has run for a slice, then on the
    /// runtime's guest threads, where CPU slots are shared fairly between tenants
    /// (`guests.rs`, `cpu.rs`). A nested invocation (`callers` not empty) is polled inside
    /// its caller's host call, so it executes wherever its caller does, under the caller's
    /// slot: taking a second one could wait for the slot its own caller holds.
    pub async fn invoke(
        &self,
        skill: &Arc<LoadedSkill>,
        request: InvocationRequest,
    ) -> InvocationReport {
        if !request.callers.is_empty() {
            return self.invoker.run(skill, request).await;
        }
        let tenant = request.context.tenant.clone();
        let invoker = Arc::clone(&self.invoker);
        let skill = Arc::clone(skill);
        self.guests
            .run(tenant, async move { invoker.run(&skill, request).await })
            .await
    }
}

impl Invoker {
    async fn run(&self, skill: &LoadedSkill, request: InvocationRequest) -> InvocationReport {
        let started = Instant::now();
        let InvocationRequest {
            context,
            input,
            limits,
            grants,
            callers,
            cancel,
            task,
        } = request;
        let limits = limits.min(self.config.platform_limits);
        let mut report = InvocationReport {
            outcome: Outcome::Ok {
                output: String::new(),
            },
            usage: Usage::default(),
            stderr: String::new(),
        };

        if let Err(e) = serde_json::from_str::<IgnoredAny>(&input) {
            report.outcome = Outcome::InvalidInput {
                message: format!("input is not JSON: {e}"),
            };
            report.usage.wall_time_us = micros(started.elapsed());
            return report;
        }
        let tenant = &context.tenant;
        // A nested invocation runs under its caller's permit.
        let permit = if callers.is_empty() {
            self.concurrency
                .try_acquire(tenant, limits.tenant_concurrency)
                .map(Some)
        } else {
            Some(None)
        };
        let Some(_permit) = permit else {
            report.outcome = Outcome::ConcurrencyLimit {
                message: format!(
                    "tenant {tenant} already runs {} invocations at once",
                    limits.tenant_concurrency
                ),
            };
            report.usage.wall_time_us = micros(started.elapsed());
            return report;
        };
        let _memory = match &self.memory_budget {
            None => None,
            Some(budget) => match budget.reserve(limits.memory_bytes).await {
                Some(reserved) => Some(reserved),
                None => {
                    report.outcome = Outcome::MemoryBudget {
                        requested_bytes: limits.memory_bytes,
                        budget_bytes: budget.total_bytes(),
                    };
                    report.usage.wall_time_us = micros(started.elapsed());
                    return report;
                }
            },
        };

        let deadline = started + limits.timeout;
        let redactions = Redactions::default();
        let stderr = StderrCapture::new(self.config.stderr_capture_bytes, redactions.clone());
        let guest_context = Invocation {
            tenant: tenant.to_string(),
            skill: context.skill.to_string(),
            version: context.version.clone(),
            request_id: context.request_id.clone(),
            deadline_unix_ms: unix_millis(SystemTime::now() + limits.timeout),
        };
        let context = Arc::new(context);
        let caps = Capabilities::new(&Setup {
            invoker: self,
            context: &context,
            grants: &grants,
            callers: &callers,
            task: task.as_ref(),
            deadline,
            redactions: &redactions,
        });
        let mut store = self.new_store(caps, &limits, deadline, stderr.clone());
        let fuel_budget = limits.fuel.unwrap_or(u64::MAX);

        let call = async {
            let instance = skill.pre.instantiate_async(&mut store).await?;
            instance
                .omniforge_skill_handler()
                .call_invoke(&mut store, &guest_context, &input)
                .await
        };
        let result = run_until(deadline, cancel.as_ref(), call).await;

        report.outcome = match result {
            Ended::Deadline => timeout(&limits),
            Ended::Canceled => Outcome::Canceled,
            Ended::Finished(Err(error)) => classify(&error, &limits, store.data(), &stderr),
            Ended::Finished(Ok(Err(skill_error))) => guest_error(skill_error, &redactions),
            Ended::Finished(Ok(Ok(output))) => check_output(output, &limits),
        };
        let state = store.data();
        report.usage = Usage {
            fuel_consumed: if self.config.fuel_metering {
                fuel_budget - store.get_fuel().unwrap_or(0)
            } else {
                0
            },
            wall_time_us: micros(started.elapsed()),
            peak_memory_bytes: state.limiter.peak_memory(),
            ..Usage::default()
        };
        state.caps.report(&mut report.usage);
        report.stderr = stderr.contents();
        report
    }

    fn new_store(
        &self,
        caps: Capabilities,
        limits: &InvocationLimits,
        deadline: Instant,
        stderr: StderrCapture,
    ) -> Store<InvocationState> {
        let state = InvocationState::new(stderr, caps, SandboxLimiter::new(limits));
        let mut store = Store::new(&self.engine, state);
        store.limiter(|state| &mut state.limiter);
        if self.config.fuel_metering {
            store
                .set_fuel(limits.fuel.unwrap_or(u64::MAX))
                .expect("fuel metering is enabled");
        }
        match self.config.deadlines {
            DeadlineEnforcement::FuelYields { interval } => {
                // The deadline itself is checked in `run_until`, at every re-poll after a yield.
                store
                    .fuel_async_yield_interval(Some(interval.max(1)))
                    .expect("fuel metering is enabled");
            }
            DeadlineEnforcement::Epochs { .. } => {
                // At every epoch tick: past the deadline the guest is stopped; before it, the
                // guest yields so that one busy guest cannot starve other tasks.
                store.set_epoch_deadline(1);
                store.epoch_deadline_callback(move |_| {
                    if Instant::now() >= deadline {
                        Err(wasmtime::Error::new(DeadlineExceeded))
                    } else {
                        Ok(UpdateDeadline::Yield(1))
                    }
                });
            }
            DeadlineEnforcement::HostCallsOnly => {}
        }
        store
    }
}

/// How [`run_until`] ended.
enum Ended<T> {
    Finished(T),
    Deadline,
    Canceled,
}

/// Runs `call` until it finishes, `deadline` passes or `cancel` is cancelled. The clock and
/// the token are read at every poll, so a guest that yields (fuel yields, epoch ticks) is
/// stopped right at the deadline or the cancel whatever the timer wheel's granularity; the
/// timer and the token's wake-up end waits in host calls.
async fn run_until<F: Future>(
    deadline: Instant,
    cancel: Option<&CancellationToken>,
    call: F,
) -> Ended<F::Output> {
    let mut call = std::pin::pin!(call);
    let mut timer = std::pin::pin!(tokio::time::sleep_until(deadline.into()));
    let mut cancelled = std::pin::pin!(async {
        match cancel {
            Some(token) => token.cancelled().await,
            None => std::future::pending().await,
        }
    });
    std::future::poll_fn(|cx| {
        if Instant::now() >= deadline {
            return Poll::Ready(Ended::Deadline);
        }
        if cancelled.as_mut().poll(cx).is_ready() {
            return Poll::Ready(Ended::Canceled);
        }
        if let Poll::Ready(output) = call.as_mut().poll(cx) {
            return Poll::Ready(Ended::Finished(output));
        }
        match timer.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(Ended::Deadline),
            Poll::Pending => Poll::Pending,
        }
    })
    .await
}

fn classify(
    error: &wasmtime::Error,
    limits: &InvocationLimits,
    state: &InvocationState,
    stderr: &StderrCapture,
) -> Outcome {
    if error.downcast_ref::<DeadlineExceeded>().is_some() {
        return timeout(limits);
    }
    let trap = error.downcast_ref::<Trap>();
    match trap {
        Some(Trap::OutOfFuel) => {
            return Outcome::FuelExhausted {
                limit: limits.fuel.unwrap_or(u64::MAX),
            };
        }
        Some(Trap::Interrupt) => return timeout(limits),
        _ => {}
    }
    // A refused memory.grow shows up as whatever the guest does next: usually an abort
    // (`unreachable`), sometimes a failed instantiation.
    if state.limiter.memory_refused() {
        return Outcome::MemoryLimit {
            limit_bytes: limits.memory_bytes,
        };
    }
    if error.downcast_ref::<PoolConcurrencyLimitError>().is_some() {
        return Outcome::ConcurrencyLimit {
            message: "the runtime runs as many instances as its pool holds".into(),
        };
    }
    let mut message = match trap {
        Some(trap) => trap.to_string(),
        None => format!("{error:#}"),
    };
    if state.limiter.table_refused() {
        message.push_str(&format!(
            " (a table grew past {} elements)",
            limits.table_elements
        ));
    }
    if let Some(panic) = panic_message(&stderr.contents()) {
        message.push_str(": ");
        message.push_str(&panic);
    }
    Outcome::Trap { message }
}

/// The last line of the guest's stderr that is not a hint, where a Rust panic message (and a
/// Python or JavaScript exception) ends up.
fn panic_message(stderr: &str) -> Option<String> {
    stderr
        .lines()
        .map(str::trim)
        .rev()
        .find(|line| !line.is_empty() && !line.starts_with("note: "))
        .map(|line| line.chars().take(500).collect())
}

fn timeout(limits: &InvocationLimits) -> Outcome {
    Outcome::Timeout {
        limit_ms: limits.timeout.as_millis().try_into().unwrap_or(u64::MAX),
    }
}

fn guest_error(error: SkillError, redactions: &Redactions) -> Outcome {
    let (kind, message) = match error {
        SkillError::InvalidInput(m) => (GuestErrorKind::InvalidInput, m),
        SkillError::Denied(m) => (GuestErrorKind::Denied, m),
        SkillError::NotFound(m) => (GuestErrorKind::NotFound, m),
        SkillError::Unavailable(m) => (GuestErrorKind::Unavailable, m),
        SkillError::Failed(m) => (GuestErrorKind::Failed, m),
    };
    let message = redactions.mask(&message).into_owned();
    Outcome::GuestError { kind, message }
}

fn check_output(output: String, limits: &InvocationLimits) -> Outcome {
    let size = output.len() as u64;
    if size > limits.output_bytes {
        return Outcome::OutputLimit {
            size_bytes: size,
            limit_bytes: limits.output_bytes,
        };
    }
    if let Err(e) = serde_json::from_str::<IgnoredAny>(&output) {
        return Outcome::Trap {
            message: format!("the skill returned output that is not JSON: {e}"),
        };
    }
    Outcome::Ok { output }
}

fn micros(d: Duration) -> u64 {
    d.as_micros().try_into().unwrap_or(u64::MAX)
}

fn unix_millis(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis().try_into().unwrap_or(u64::MAX))
}

#[cfg(test)]
mod tests {
    use super::panic_message;

    #[test]
    fn the_panic_message_skips_hints() {
        let stderr = "\nthread '<unnamed>' panicked at src/lib.rs:9:9:\nboom\nnote: run with `RUST_BACKTRACE=1`\n";
        assert_eq!(panic_message(stderr).as_deref(), Some("boom"));
        assert_eq!(panic_message("\n  \n"), None);
    }
}
