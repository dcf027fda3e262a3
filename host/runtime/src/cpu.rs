//! Who runs guest code when there are more runnable guests than cores: a fair share between
//! tenants.
//!
//! A guest executes only while it holds one of a few CPU slots (as many as the machine has
//! cores). It gives the slot back every time its future returns `Pending`: at each fuel yield
//! (every `interval` units of fuel) and whenever it waits in a host call. A freed slot goes
//! to the waiting guest of the tenant that holds the fewest slots at that moment (ties in
//! arrival order of tenants), so one tenant's flood of CPU-bound guests takes turns among
//! itself, and another tenant's guest waits at most for the next yield of a running one.
//! Without this, every runnable guest queues in the async executor in arrival order, and a
//! tenant with 16 spinning guests made another tenant's 0.5 ms `hello` wait behind all 16
//! (docs/performance.md).

use std::collections::{HashMap, VecDeque};
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};

use crate::invocation::TenantId;

/// A waiting guest: granted a slot by the releasing guest, which then wakes it.
#[derive(Debug, Default)]
struct Waiter {
    granted: bool,
    waker: Option<Waker>,
}

type WaiterRef = Arc<Mutex<Waiter>>;

#[derive(Debug, Default)]
struct State {
    free: usize,
    /// Slots held per tenant.
    held: HashMap<TenantId, usize>,
    /// Waiting guests per tenant, oldest first.
    waiting: HashMap<TenantId, VecDeque<WaiterRef>>,
    /// Tenants with waiting guests, in the order they started waiting.
    tenants: VecDeque<TenantId>,
}

impl State {
    /// Gives a free slot to the waiting guest of the tenant holding the fewest slots.
    fn hand_over(&mut self) {
        while self.free > 0 {
            let Some(index) = (0..self.tenants.len())
                .min_by_key(|&i| self.held.get(&self.tenants[i]).copied().unwrap_or(0))
            else {
                return;
            };
            let tenant = self.tenants[index].clone();
            let queue = self.waiting.get_mut(&tenant).expect("listed tenants wait");
            let waiter = queue.pop_front().expect("listed tenants have waiters");
            if queue.is_empty() {
                self.waiting.remove(&tenant);
                self.tenants.remove(index);
            } else {
                // Behind the other waiting tenants of equal share.
                let tenant = self.tenants.remove(index).expect("in range");
                self.tenants.push_back(tenant);
            }
            self.free -= 1;
            *self.held.entry(tenant).or_insert(0) += 1;
            let mut waiter = lock(&waiter);
            waiter.granted = true;
            if let Some(waker) = waiter.waker.take() {
                waker.wake();
            }
        }
    }

    fn release(&mut self, tenant: &TenantId) {
        if let Some(held) = self.held.get_mut(tenant) {
            *held -= 1;
            if *held == 0 {
                self.held.remove(tenant);
            }
        }
        self.free += 1;
        self.hand_over();
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

/// The CPU slots of one runtime.
#[derive(Debug)]
pub(crate) struct CpuSlots {
    state: Mutex<State>,
}

impl CpuSlots {
    /// `slots` guests may execute at once (at least one).
    pub(crate) fn new(slots: usize) -> Arc<Self> {
        Arc::new(Self {
            state: Mutex::new(State {
                free: slots.max(1),
                ..State::default()
            }),
        })
    }

    /// Runs `future` (a guest's call) for `tenant`, polling it only while it holds a slot.
    pub(crate) fn run<F: Future>(self: &Arc<Self>, tenant: TenantId, future: F) -> Fair<F> {
        Fair {
            slots: Arc::clone(self),
            tenant,
            waiter: None,
            future: Box::pin(future),
        }
    }
}

/// A guest's future that executes only while it holds a CPU slot.
pub(crate) struct Fair<F> {
    slots: Arc<CpuSlots>,
    tenant: TenantId,
    waiter: Option<WaiterRef>,
    future: Pin<Box<F>>,
}

impl<F> Drop for Fair<F> {
    fn drop(&mut self) {
        if let Some(waiter) = self.waiter.take() {
            self.slots.abandon(&self.tenant, &waiter);
        }
    }
}

/// A slot held for one poll, given back however the poll ends.
struct Held<'a> {
    slots: &'a CpuSlots,
    tenant: &'a TenantId,
}

impl Drop for Held<'_> {
    fn drop(&mut self) {
        lock(&self.slots.state).release(self.tenant);
    }
}

impl CpuSlots {
    /// A slot now, or `false` after queueing `waiter` (which is woken when granted).
    fn try_take(&self, tenant: &TenantId, waiter: &WaiterRef, cx: &Context<'_>) -> bool {
        let mut state = lock(&self.state);
        {
            let mut w = lock(waiter);
            if w.granted {
                return true;
            }
            w.waker = Some(cx.waker().clone());
        }
        let queued = state
            .waiting
            .get(tenant)
            .is_some_and(|q| q.iter().any(|w| Arc::ptr_eq(w, waiter)));
        if queued {
            return false;
        }
        if state.free > 0 && state.tenants.is_empty() {
            state.free -= 1;
            *state.held.entry(tenant.clone()).or_insert(0) += 1;
            return true;
        }
        state
            .waiting
            .entry(tenant.clone())
            .or_default()
            .push_back(Arc::clone(waiter));
        if !state.tenants.contains(tenant) {
            state.tenants.push_back(tenant.clone());
        }
        state.hand_over();
        lock(waiter).granted
    }

    /// A dropped future gives back the slot it was granted, or its place in the queue.
    fn abandon(&self, tenant: &TenantId, waiter: &WaiterRef) {
        let mut state = lock(&self.state);
        if lock(waiter).granted {
            state.release(tenant);
            return;
        }
        if let Some(queue) = state.waiting.get_mut(tenant) {
            queue.retain(|w| !Arc::ptr_eq(w, waiter));
            if queue.is_empty() {
                state.waiting.remove(tenant);
                state.tenants.retain(|t| t != tenant);
            }
        }
    }
}

impl<F: Future> Future for Fair<F> {
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let this = self.get_mut();
        let waiter = this.waiter.get_or_insert_with(WaiterRef::default);
        if !this.slots.try_take(&this.tenant, waiter, cx) {
            return Poll::Pending;
        }
        this.waiter = None;
        let _held = Held {
            slots: &this.slots,
            tenant: &this.tenant,
        };
        this.future.as_mut().poll(cx)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::task::Wake;

    use super::*;

    struct Count(AtomicUsize);

    impl Wake for Count {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    /// A future that is pending `n` times (waking itself, as a fuel yield does), then ready.
    struct Yields(usize);

    impl Future for Yields {
        type Output = ();

        fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
            if self.0 == 0 {
                return Poll::Ready(());
            }
            self.0 -= 1;
            cx.waker().wake_by_ref();
            Poll::Pending
        }
    }

    #[test]
    fn a_freed_slot_goes_to_the_tenant_holding_the_fewest() {
        let slots = CpuSlots::new(2);
        let wakes = Arc::new(Count(AtomicUsize::new(0)));
        let waker = Waker::from(Arc::clone(&wakes));
        let mut cx = Context::from_waker(&waker);
        let (noisy, quiet) = (TenantId::new("noisy"), TenantId::new("quiet"));

        // Alone, a guest takes a free slot at once and gives it back at its yield.
        let mut alone = Box::pin(slots.run(noisy.clone(), Yields(1)));
        assert!(alone.as_mut().poll(&mut cx).is_pending());
        assert_eq!(lock(&slots.state).free, 2);
        assert!(alone.as_mut().poll(&mut cx).is_ready());

        // Two of noisy's guests are executing (on other cores): both slots are taken.
        {
            let mut state = lock(&slots.state);
            state.free = 0;
            state.held.insert(noisy.clone(), 2);
        }
        let mut third = Box::pin(slots.run(noisy.clone(), Yields(1)));
        let mut other = Box::pin(slots.run(quiet.clone(), Yields(0)));
        assert!(third.as_mut().poll(&mut cx).is_pending());
        assert!(other.as_mut().poll(&mut cx).is_pending());
        // One of them yields: quiet, holding none, gets the slot though noisy waited first.
        lock(&slots.state).release(&noisy);
        assert!(lock(&waiter_of(&other)).granted);
        assert!(!lock(&waiter_of(&third)).granted);
        assert!(other.as_mut().poll(&mut cx).is_ready());
        // Quiet is done: its slot goes to noisy's waiting guest.
        assert!(lock(&waiter_of(&third)).granted);
        assert!(third.as_mut().poll(&mut cx).is_pending());
        // A dropped waiter gives its place (or its granted slot) back.
        lock(&slots.state).release(&noisy);
        drop(third);
        let state = lock(&slots.state);
        assert_eq!(state.free, 2);
        assert!(state.held.is_empty() && state.waiting.is_empty() && state.tenants.is_empty());
        assert!(wakes.0.load(Ordering::SeqCst) > 0);
    }

    fn waiter_of<F>(fair: &Pin<Box<Fair<F>>>) -> WaiterRef {
        Arc::clone(fair.waiter.as_ref().expect("waiting"))
    }
}
