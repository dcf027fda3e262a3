//! Runtime configuration: how the process-wide engine is built. Fixed for the life of a
//! [`Runtime`](crate::Runtime); per-invocation settings live in [`InvocationLimits`].

use std::path::PathBuf;
use std::time::Duration;

use crate::capabilities::{HttpLimits, KvLimits, LogLimits};
use crate::limits::InvocationLimits;

/// Settings of the engine, the caches and the capabilities' host-side bounds.
#[derive(Debug, Clone)]
pub struct RuntimeConfig {
    /// How instances get their memory and tables.
    pub allocator: AllocatorConfig,
    /// Compile fuel accounting into guest code so invocations can have CPU budgets (and usage
    /// in fuel units). Turning it off makes guest code faster; deadlines then need epochs.
    pub fuel_metering: bool,
    /// How a running guest is stopped at its wall-clock deadline. Time blocked in host calls
    /// is bounded by a timer whatever this says.
    pub deadlines: DeadlineEnforcement,
    /// Let Cranelift inline small wasm functions into their callers: faster call-heavy guests
    /// (and fewer metering checks at function entries) for somewhat longer compiles.
    pub inlining: bool,
    /// Directory of the on-disk compiled-artifact cache; `None` compiles on every cold load.
    pub cache_dir: Option<PathBuf>,
    /// How many loaded skills (`InstancePre`s) stay in memory, least recently used evicted.
    pub loaded_skill_capacity: usize,
    /// Maximum wasm stack per invocation; deeper recursion traps with a stack overflow.
    pub max_wasm_stack: usize,
    /// Upper bound of every invocation's limits, whatever the caller asks for.
    pub platform_limits: InvocationLimits,
    /// Bounds of the `log` capability.
    pub log: LogLimits,
    /// Bounds of the `kv` capability.
    pub kv: KvLimits,
    /// Bounds of outbound HTTP.
    pub http: HttpLimits,
    /// Bytes of a guest's stderr kept per invocation (the rest is discarded); a panicking
    /// Rust guest writes its panic message there.
    pub stderr_capture_bytes: usize,
    /// Memory all running sandboxes may reserve together: each invocation reserves its whole
    /// memory limit before it starts. `None`: no host-wide budget.
    pub memory_budget_bytes: Option<u64>,
    /// How long an invocation waits for room in the memory budget before it is refused.
    pub memory_budget_wait: Duration,
    /// Long guests executing at once on the guest threads, one thread per slot (the rest wait
    /// for a slot, taking turns at every yield, the tenant holding the fewest slots first),
    /// so that one tenant's CPU-bound guests take turns among themselves instead of queueing
    /// ahead of other tenants' guests. Default: the cores ([`default_cpu_slots`]).
    pub cpu_slots: usize,
}

/// Half of the memory this process may use: the machine's, or its cgroup's limit when that
/// is smaller (a container). 4 GiB when neither can be read.
pub fn default_memory_budget() -> u64 {
    fn meminfo_total() -> Option<u64> {
        let text = std::fs::read_to_string("/proc/meminfo").ok()?;
        let line = text.lines().find(|l| l.starts_with("MemTotal:"))?;
        let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
        Some(kib * 1024)
    }
    fn cgroup_limit() -> Option<u64> {
        let text = std::fs::read_to_string("/sys/fs/cgroup/memory.max").ok()?;
        text.trim().parse().ok()
    }
    let available = match (meminfo_total(), cgroup_limit()) {
        (Some(machine), Some(group)) => machine.min(group),
        (Some(one), None) | (None, Some(one)) => one,
        (None, None) => 8 << 30,
    };
    available / 2
}

/// The cores this process may use. The guest threads run at a lower OS priority, so using
/// every core for guests does not keep requests from being served (docs/performance.md,
/// "Noisy neighbour"); operators choose otherwise with `skills.cpu_slots`.
pub fn default_cpu_slots() -> usize {
    std::thread::available_parallelism().map_or(1, usize::from)
}

impl Default for RuntimeConfig {
    fn default() -> Self {
        Self {
            allocator: AllocatorConfig::Pooling(PoolConfig::default()),
            fuel_metering: true,
            deadlines: DeadlineEnforcement::FuelYields {
                interval: 1_000_000,
            },
            inlining: false,
            cache_dir: None,
            loaded_skill_capacity: 256,
            max_wasm_stack: 1 << 20,
            platform_limits: InvocationLimits::platform_default(),
            log: LogLimits::default(),
            kv: KvLimits::default(),
            http: HttpLimits::default(),
            stderr_capture_bytes: 8 * 1024,
            memory_budget_bytes: Some(default_memory_budget()),
            memory_budget_wait: Duration::from_secs(1),
            cpu_slots: default_cpu_slots(),
        }
    }
}

/// How guest code that is running (not blocked in a host call) is stopped at its deadline.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeadlineEnforcement {
    /// Every `interval` units of fuel the guest yields to the async executor, which checks the
    /// deadline before resuming it. Costs nothing beyond fuel metering, which it requires;
    /// deadlines are as precise as the time the guest takes to burn `interval` fuel.
    FuelYields {
        /// Fuel between yields (one unit is about one wasm instruction).
        interval: u64,
    },
    /// Epoch checks compiled into guest code; a ticker thread advances the epoch every `tick`
    /// and the guest yields to the executor at each one. Works without fuel, costs more.
    Epochs {
        /// Period of the epoch ticker: the precision of deadlines.
        tick: Duration,
    },
    /// No interruption of running guest code: only time blocked in host calls is bounded, so
    /// a looping guest runs until its fuel ends (or forever without fuel). For measuring the
    /// metering overhead, not for serving.
    HostCallsOnly,
}

/// Instance allocation strategy.
#[derive(Debug, Clone)]
pub enum AllocatorConfig {
    /// Pre-reserved slots for instances, memories and tables: instantiation is a few
    /// microseconds, and the pool size caps how many invocations run at once.
    Pooling(PoolConfig),
    /// Allocate on demand with mmap for every instance: no cap, slower instantiation.
    OnDemand,
}

/// Sizes of the pooling allocator. Slots are virtual reservations; only touched pages cost RAM.
#[derive(Debug, Clone)]
pub struct PoolConfig {
    /// Component instances alive at once (one per running invocation).
    pub component_instances: u32,
    /// Core module instances alive at once (a component has several).
    pub core_instances: u32,
    /// Linear memories alive at once.
    pub memories: u32,
    /// Tables alive at once.
    pub tables: u32,
    /// Largest size of one linear memory, in bytes.
    pub max_memory_bytes: usize,
    /// Largest number of elements of one table.
    pub table_elements: usize,
    /// Bytes of each memory slot reset with memset instead of being returned to the kernel
    /// when the slot is reused: trades a little resident memory for far fewer page faults.
    pub memory_keep_resident_bytes: usize,
    /// Same as `memory_keep_resident_bytes`, for tables.
    pub table_keep_resident_bytes: usize,
    /// On Linux 6.7 and later, ask the kernel which pages a finished invocation dirtied
    /// (`PAGEMAP_SCAN`) and reset only those, instead of the whole keep-resident region.
    /// Ignored where the kernel lacks it.
    pub pagemap_scan: bool,
}

impl Default for PoolConfig {
    fn default() -> Self {
        Self {
            component_instances: 1000,
            core_instances: 10_000,
            memories: 2000,
            tables: 4000,
            max_memory_bytes: 1 << 30,
            table_elements: 100_000,
            memory_keep_resident_bytes: 1 << 20,
            table_keep_resident_bytes: 64 << 10,
            pagemap_scan: true,
        }
    }
}
