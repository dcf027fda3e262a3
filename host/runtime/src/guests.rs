//! Where guest code executes: a short invocation on the thread that started it, a long one on
//! guest threads of its own.
//!
//! Most invocations are short (`hello` executes for ~10 µs), and handing each to another
//! thread would cost more than running it. So an invocation starts on the task that asked for
//! it: a request-serving thread. Once it has executed there for [`SERVING_BUDGET`] (at its
//! first fuel yield, in practice), it moves, at that yield, to the guest threads: a small
//! executor with one thread per CPU slot at a lower OS priority (nice [`GUEST_NICE`]), where
//! CPU slots share the cores fairly between tenants (`cpu.rs`).
//!
//! This keeps one tenant's CPU flood off the threads that accept, parse and answer requests.
//! Before, the flood's guest slices ran on those threads: tokio polls for I/O only every 61
//! scheduler ticks, so another tenant's request waited tens of slices before it was even read
//! (4.3× its quiet p99, docs/performance.md). Now a request-serving thread runs at most one
//! slice of a long guest, and the kernel prefers it to the guest threads whenever both want a
//! core.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use tokio::runtime::Handle;
use tokio::task::JoinHandle;

use crate::cpu::CpuSlots;
use crate::invocation::TenantId;

/// How long an invocation may execute on the thread that started it before it moves to the
/// guest threads at its next yield. Well above a small skill's whole run, so those never pay
/// the hand-over (a few µs of wake-ups); well below a request's time budget.
pub(crate) const SERVING_BUDGET: Duration = Duration::from_micros(200);

/// The nice value of guest threads: the kernel gives a nice-0 thread about ten times the CPU
/// of a nice-10 one, so a request-serving thread that wakes up is not kept waiting by a guest.
pub(crate) const GUEST_NICE: i32 = 10;

/// The guest threads of one runtime and the CPU slots that share them.
pub(crate) struct GuestThreads {
    slots: Arc<CpuSlots>,
    threads: usize,
    /// Built when the first invocation moves, so runtimes that never run a long guest (the
    /// CLI's, most tests') start no threads.
    executor: OnceLock<Option<tokio::runtime::Runtime>>,
}

impl GuestThreads {
    /// Guest threads for `slots` CPU slots (one thread each).
    pub(crate) fn new(slots: usize) -> Self {
        Self {
            slots: CpuSlots::new(slots),
            threads: slots.max(1),
            executor: OnceLock::new(),
        }
    }

    /// Runs `future` (an invocation of `tenant`) here until it has executed for
    /// [`SERVING_BUDGET`], then on the guest threads under a CPU slot.
    pub(crate) fn run<F>(&self, tenant: TenantId, future: F) -> Placed<'_, F>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        Placed {
            threads: self,
            place: Place::Here {
                tenant,
                future: Box::pin(future),
                executed: Duration::ZERO,
            },
        }
    }

    fn handle(&self) -> Option<Handle> {
        self.executor
            .get_or_init(|| {
                let built = tokio::runtime::Builder::new_multi_thread()
                    .worker_threads(self.threads)
                    .thread_name("omniforge-guest")
                    .on_thread_start(lower_priority)
                    .enable_all()
                    .build();
                built
                    .inspect_err(|e| {
                        tracing::warn!(
                            "cannot start guest threads, long guests stay where they start: {e}"
                        );
                    })
                    .ok()
            })
            .as_ref()
            .map(|executor| executor.handle().clone())
    }
}

impl Drop for GuestThreads {
    fn drop(&mut self) {
        // Dropping a tokio runtime blocks until its threads stop, which panics inside an
        // async context (where a runtime is usually dropped); nothing runs there any more.
        if let Some(Some(executor)) = self.executor.take() {
            executor.shutdown_background();
        }
    }
}

/// Lowers the calling thread's scheduling priority (on Linux, nice is per thread).
fn lower_priority() {
    #[cfg(target_os = "linux")]
    {
        // SAFETY: setpriority only reads its integer arguments; `who` 0 is the calling thread.
        #[allow(unsafe_code)]
        let result = unsafe { libc::setpriority(libc::PRIO_PROCESS, 0, GUEST_NICE) };
        if result != 0 {
            tracing::debug!(
                "guest threads keep the default priority: {}",
                std::io::Error::last_os_error()
            );
        }
    }
}

/// An invocation's future, on the thread that started it or on a guest thread.
pub(crate) struct Placed<'a, F: Future> {
    threads: &'a GuestThreads,
    place: Place<F>,
}

enum Place<F: Future> {
    Here {
        tenant: TenantId,
        future: Pin<Box<F>>,
        executed: Duration,
    },
    There(JoinHandle<F::Output>),
    Moving,
}

impl<F> Future for Placed<'_, F>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let this = self.get_mut();
        if let Place::Here {
            future, executed, ..
        } = &mut this.place
        {
            let started = Instant::now();
            if let Poll::Ready(output) = future.as_mut().poll(cx) {
                return Poll::Ready(output);
            }
            *executed += started.elapsed();
            if *executed < SERVING_BUDGET {
                return Poll::Pending;
            }
            let Some(guests) = this.threads.handle() else {
                return Poll::Pending;
            };
            let Place::Here { tenant, future, .. } =
                std::mem::replace(&mut this.place, Place::Moving)
            else {
                unreachable!("matched above");
            };
            let fair = this.threads.slots.run(tenant, future);
            this.place = Place::There(guests.spawn(fair));
        }
        let Place::There(task) = &mut this.place else {
            unreachable!("a placed future is here or there");
        };
        match Pin::new(task).poll(cx) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(Ok(output)) => Poll::Ready(output),
            Poll::Ready(Err(e)) => match e.try_into_panic() {
                // As if it had panicked where it started.
                Ok(panic) => std::panic::resume_unwind(panic),
                // Only `Drop` aborts the task, and the guest threads stop only when the
                // runtime that this future borrows is dropped.
                Err(e) => unreachable!("a moved invocation was cancelled: {e}"),
            },
        }
    }
}

impl<F: Future> Drop for Placed<'_, F> {
    fn drop(&mut self) {
        // A dropped invocation (its caller gone) stops wherever it runs.
        if let Place::There(task) = &self.place {
            task.abort();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Burns CPU in slices of `slice`, yielding between them, `n` times; says where it ended.
    async fn slices(n: usize, slice: Duration) -> String {
        for _ in 0..n {
            let until = Instant::now() + slice;
            while Instant::now() < until {
                std::hint::spin_loop();
            }
            tokio::task::yield_now().await;
        }
        std::thread::current().name().unwrap_or("").to_owned()
    }

    #[tokio::test]
    async fn short_work_stays_and_long_work_moves_to_the_guest_threads() {
        let threads = GuestThreads::new(1);
        let tenant = TenantId::new("t");
        let here = std::thread::current().name().unwrap_or("").to_owned();

        let short = threads.run(tenant.clone(), slices(3, Duration::from_micros(10)));
        assert_eq!(short.await, here);
        assert!(threads.executor.get().is_none(), "no thread started");

        let long = threads.run(tenant.clone(), slices(3, SERVING_BUDGET));
        assert_eq!(long.await, "omniforge-guest");

        #[cfg(target_os = "linux")]
        {
            let nice = threads.run(tenant, async {
                slices(1, SERVING_BUDGET).await;
                tokio::task::yield_now().await;
                // SAFETY: getpriority reads its integer arguments only.
                #[allow(unsafe_code)]
                unsafe {
                    libc::getpriority(libc::PRIO_PROCESS, 0)
                }
            });
            assert_eq!(nice.await, GUEST_NICE);
        }
    }

    #[tokio::test]
    async fn a_dropped_invocation_stops_on_the_guest_threads() {
        let threads = GuestThreads::new(1);
        let dropped = Arc::new(());
        let held = Arc::clone(&dropped);
        let mut forever = Box::pin(threads.run(TenantId::new("t"), async move {
            let _held = held;
            loop {
                slices(1, SERVING_BUDGET).await;
            }
        }));
        while !matches!(forever.place, Place::There(_)) {
            std::future::poll_fn(|cx| {
                assert!(forever.as_mut().poll(cx).is_pending());
                Poll::Ready(())
            })
            .await;
        }
        drop(forever);
        let until = Instant::now() + Duration::from_secs(5);
        while Arc::strong_count(&dropped) > 1 {
            assert!(Instant::now() < until, "the task still runs");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
}
