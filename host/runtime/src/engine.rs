//! Builds the process-wide wasmtime [`Engine`] and runs the epoch ticker behind deadlines.

use std::thread;
use std::time::{Duration, Instant};

use wasmtime::{
    Config, Enabled, Engine, EngineWeak, Inlining, InstanceAllocationStrategy,
    PoolingAllocationConfig,
};

use crate::config::{AllocatorConfig, DeadlineEnforcement, RuntimeConfig};
use crate::error::RuntimeError;

/// Creates the engine: component model, epoch interruption, optional fuel, the configured
/// instance allocator and parallel Cranelift compilation.
pub(crate) fn build_engine(config: &RuntimeConfig) -> Result<Engine, RuntimeError> {
    let mut wasm = Config::new();
    wasm.wasm_component_model(true)
        // Skills use WASI 0.2 (async host calls on fibers), not the component-model async
        // ABI; without this, every store sets up (and on drop tears down, building an error
        // with a backtrace when RUST_BACKTRACE is set) state for concurrent calls.
        .concurrency_support(false)
        .epoch_interruption(matches!(
            config.deadlines,
            DeadlineEnforcement::Epochs { .. }
        ))
        .consume_fuel(config.fuel_metering)
        .max_wasm_stack(config.max_wasm_stack)
        // Host calls and fibers need room above the guest's own stack.
        .async_stack_size(config.max_wasm_stack + (1 << 20))
        .parallel_compilation(true)
        .cranelift_opt_level(wasmtime::OptLevel::Speed)
        .compiler_inlining(if config.inlining {
            Inlining::Yes
        } else {
            Inlining::No
        });
    if matches!(config.deadlines, DeadlineEnforcement::FuelYields { .. }) && !config.fuel_metering {
        return Err(RuntimeError::Engine(
            "deadlines through fuel yields need fuel metering; turn it on or use epochs".into(),
        ));
    }
    if let AllocatorConfig::Pooling(pool) = &config.allocator {
        let mut pooling = PoolingAllocationConfig::new();
        pooling
            .total_component_instances(pool.component_instances)
            .total_core_instances(pool.core_instances)
            .total_memories(pool.memories)
            .total_tables(pool.tables)
            .total_stacks(pool.component_instances)
            .max_memory_size(pool.max_memory_bytes)
            .table_elements(pool.table_elements)
            .max_memories_per_component(pool.memories.min(16))
            .max_tables_per_component(pool.tables.min(64))
            .max_core_instances_per_component(pool.core_instances.min(256))
            .linear_memory_keep_resident(pool.memory_keep_resident_bytes)
            .table_keep_resident(pool.table_keep_resident_bytes)
            .pagemap_scan(if pool.pagemap_scan {
                Enabled::Auto
            } else {
                Enabled::No
            });
        wasm.allocation_strategy(InstanceAllocationStrategy::Pooling(pooling));
    }
    Engine::new(&wasm).map_err(|e| RuntimeError::Engine(format!("{e:#}")))
}

/// Starts the thread that advances the engine's epoch every `tick`. It sleeps to absolute
/// times so ticks do not drift, and stops once the engine is dropped.
pub(crate) fn start_epoch_ticker(engine: &Engine, tick: Duration) -> Result<(), RuntimeError> {
    let weak: EngineWeak = engine.weak();
    thread::Builder::new()
        .name("omniforge-epoch".into())
        .spawn(move || {
            let mut next = Instant::now() + tick;
            loop {
                let now = Instant::now();
                if next > now {
                    thread::sleep(next - now);
                }
                let Some(engine) = weak.upgrade() else { return };
                engine.increment_epoch();
                drop(engine);
                next += tick;
                // After a long stall (suspended process) skip the missed ticks instead of
                // firing them all at once.
                let now = Instant::now();
                if next + tick * 100 < now {
                    next = now + tick;
                }
            }
        })
        .map(|_| ())
        .map_err(|e| RuntimeError::Engine(format!("cannot start the epoch ticker: {e}")))
}
