//! Per-invocation limits and the resource limiter that enforces the memory and table ones.

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// Limits of one invocation. Callers pass min(manifest request, tenant policy); the runtime
/// clamps the result to its platform maximum, so no caller can lift a limit past it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct InvocationLimits {
    /// CPU budget in fuel units (one per wasm instruction, including the local-variable moves
    /// that compile to nothing: a tight loop burns about 15 billion a second on a current
    /// core, typical code a few billion); `None` = only the platform maximum applies.
    pub fuel: Option<u64>,
    /// Total bytes of all the instance's linear memories together.
    pub memory_bytes: u64,
    /// Wall-clock time for the whole invocation, including instantiation and time the guest
    /// spends blocked in host calls (sleeping, waiting on HTTP).
    #[serde(with = "duration_ms")]
    pub timeout: Duration,
    /// Largest output the skill may return, in bytes.
    pub output_bytes: u64,
    /// Largest number of elements of any one table.
    pub table_elements: u64,
    /// Core instances, memories and tables each (a component is made of several).
    pub instances: u32,
    /// Invocations of one tenant running at once in this runtime.
    pub tenant_concurrency: u32,
}

impl InvocationLimits {
    /// The default upper bound of a platform.
    pub const fn platform_default() -> Self {
        Self {
            fuel: Some(100_000_000_000),
            memory_bytes: 512 << 20,
            timeout: Duration::from_secs(60),
            output_bytes: 16 << 20,
            table_elements: 100_000,
            instances: 100,
            tenant_concurrency: 256,
        }
    }

    /// Each limit of `self` or of `other`, whichever is stricter.
    pub fn min(self, other: Self) -> Self {
        let fuel = match (self.fuel, other.fuel) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        Self {
            fuel,
            memory_bytes: self.memory_bytes.min(other.memory_bytes),
            timeout: self.timeout.min(other.timeout),
            output_bytes: self.output_bytes.min(other.output_bytes),
            table_elements: self.table_elements.min(other.table_elements),
            instances: self.instances.min(other.instances),
            tenant_concurrency: self.tenant_concurrency.min(other.tenant_concurrency),
        }
    }
}

impl Default for InvocationLimits {
    /// Modest limits for an unconfigured caller: 5e9 fuel (around a second of CPU), 128 MiB,
    /// 10 s, 1 MiB of output.
    fn default() -> Self {
        Self {
            fuel: Some(5_000_000_000),
            memory_bytes: 128 << 20,
            timeout: Duration::from_secs(10),
            output_bytes: 1 << 20,
            table_elements: 50_000,
            instances: 50,
            tenant_concurrency: 16,
        }
    }
}

mod duration_ms {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(d.as_millis().try_into().unwrap_or(u64::MAX))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        u64::deserialize(d).map(Duration::from_millis)
    }
}

/// Enforces memory and table limits across all of one invocation's memories and tables
/// (wasmtime's `StoreLimits` counts each memory on its own), and records peak memory.
///
/// A refused growth is reported to the guest as a failed `memory.grow` (wasm semantics: the
/// guest may handle it); `memory_refused` remembers it so that a trap that follows is
/// classified as `memory_limit` rather than a crash.
#[derive(Debug)]
pub(crate) struct SandboxLimiter {
    memory_limit: u64,
    table_elements: u64,
    instances: usize,
    memory_in_use: u64,
    peak_memory: u64,
    last_memory_growth: u64,
    memory_refused: bool,
    table_refused: bool,
}

impl SandboxLimiter {
    pub(crate) fn new(limits: &InvocationLimits) -> Self {
        Self {
            memory_limit: limits.memory_bytes,
            table_elements: limits.table_elements,
            instances: limits.instances as usize,
            memory_in_use: 0,
            peak_memory: 0,
            last_memory_growth: 0,
            memory_refused: false,
            table_refused: false,
        }
    }

    pub(crate) fn peak_memory(&self) -> u64 {
        self.peak_memory
    }

    pub(crate) fn memory_refused(&self) -> bool {
        self.memory_refused
    }

    pub(crate) fn table_refused(&self) -> bool {
        self.table_refused
    }
}

impl wasmtime::ResourceLimiter for SandboxLimiter {
    fn memory_growing(
        &mut self,
        current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        let growth = desired.saturating_sub(current) as u64;
        if self.memory_in_use.saturating_add(growth) > self.memory_limit {
            self.memory_refused = true;
            return Ok(false);
        }
        self.memory_in_use += growth;
        self.last_memory_growth = growth;
        self.peak_memory = self.peak_memory.max(self.memory_in_use);
        Ok(true)
    }

    fn memory_grow_failed(&mut self, _error: wasmtime::Error) -> wasmtime::Result<()> {
        // We allowed it but the memory could not grow (its own maximum, or the pool slot's):
        // the bytes were never used.
        self.memory_in_use -= self.last_memory_growth;
        self.last_memory_growth = 0;
        Ok(())
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired as u64 > self.table_elements {
            self.table_refused = true;
            return Ok(false);
        }
        Ok(true)
    }

    fn instances(&self) -> usize {
        self.instances
    }

    fn tables(&self) -> usize {
        self.instances
    }

    fn memories(&self) -> usize {
        self.instances
    }
}

#[cfg(test)]
mod tests {
    use wasmtime::ResourceLimiter;

    use super::*;

    const PAGE: usize = 64 * 1024;

    fn limiter(memory_bytes: u64) -> SandboxLimiter {
        SandboxLimiter::new(&InvocationLimits {
            memory_bytes,
            ..InvocationLimits::default()
        })
    }

    #[test]
    fn memory_is_limited_across_all_memories() {
        let mut l = limiter(4 * PAGE as u64);
        assert!(l.memory_growing(0, 2 * PAGE, None).unwrap());
        assert!(
            l.memory_growing(0, 2 * PAGE, None).unwrap(),
            "a second memory fits exactly"
        );
        assert!(
            !l.memory_growing(2 * PAGE, 3 * PAGE, None).unwrap(),
            "a fifth page is over"
        );
        assert!(l.memory_refused());
        assert_eq!(l.peak_memory(), 4 * PAGE as u64);
    }

    #[test]
    fn failed_growth_is_not_counted() {
        let mut l = limiter(4 * PAGE as u64);
        assert!(l.memory_growing(0, 3 * PAGE, None).unwrap());
        l.memory_grow_failed(wasmtime::format_err!("slot too small"))
            .unwrap();
        assert!(l.memory_growing(0, 4 * PAGE, None).unwrap());
        assert!(!l.memory_refused());
    }

    #[test]
    fn tables_are_limited_per_table() {
        let mut l = SandboxLimiter::new(&InvocationLimits {
            table_elements: 10,
            ..InvocationLimits::default()
        });
        assert!(l.table_growing(0, 10, None).unwrap());
        assert!(!l.table_growing(10, 11, None).unwrap());
        assert!(l.table_refused());
    }

    #[test]
    fn min_takes_the_stricter_limit_and_keeps_any_fuel_budget() {
        let a = InvocationLimits {
            fuel: None,
            memory_bytes: 10,
            ..InvocationLimits::default()
        };
        let b = InvocationLimits {
            fuel: Some(5),
            memory_bytes: 20,
            ..InvocationLimits::default()
        };
        let m = a.min(b);
        assert_eq!(m.fuel, Some(5));
        assert_eq!(m.memory_bytes, 10);
    }
}
