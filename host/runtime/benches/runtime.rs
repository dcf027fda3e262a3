//! Runtime benchmarks. Not timed tests: they print Markdown tables for docs/performance.md.
//!
//! ```sh
//! cargo bench -p omniforge-runtime --bench runtime            # full run, ~2 minutes
//! cargo bench -p omniforge-runtime --bench runtime -- quick   # smaller samples
//! cargo bench -p omniforge-runtime --bench runtime -- latency metering   # some sections
//! ```
//!
//! Measures: compile time vs cache-load time per example skill; fresh store + instance +
//! invoke latency of `hello` with the pooling allocator (with and without keep-resident
//! slots) and on demand; fresh-instance throughput with several tasks on all cores; and the
//! cost of fuel and epoch-deadline metering on a JSON-processing skill and a CPU-bound loop;
//! and what shorter slices between fuel yields cost (`slices`).

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use omniforge_runtime::{
    AllocatorConfig, DeadlineEnforcement, Grants, InvocationContext, InvocationLimits,
    InvocationRequest, LoadedSkill, PoolConfig, Runtime, RuntimeConfig, TenantId,
};
use omniforge_test_programs as programs;

fn main() {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .collect();
    let quick = args.iter().any(|a| a == "quick");
    let sections = [
        "compile",
        "latency",
        "throughput",
        "metering",
        "hello-loop",
        "guests",
        "slices",
    ];
    let wanted: Vec<&str> = sections
        .into_iter()
        .filter(|s| args.iter().any(|a| a == s))
        .collect();
    let run = |section: &str| wanted.is_empty() || wanted.contains(&section);
    let scale = if quick { 10 } else { 1 };
    println!("# omniforge-runtime benchmarks\n");
    println!("- machine: {} cores, {}", cores(), cpu_model());
    println!("- profile: release (`cargo bench`), wasmtime 48.0.8\n");

    let current = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    if run("compile") {
        current.block_on(compile_vs_cache(scale));
    }
    if run("latency") {
        current.block_on(latency(scale));
    }
    if run("throughput") {
        throughput(if quick { 1 } else { 3 });
    }
    if run("metering") {
        current.block_on(metering(scale));
    }
    if run("slices") {
        current.block_on(slices(scale));
    }
    // Not part of the default run: components built outside this workspace (the SDK
    // examples), named in OMNIFORGE_BENCH_GUESTS; scripts/bench-sdk.sh builds and passes them.
    if wanted.contains(&"guests") || std::env::var_os("OMNIFORGE_BENCH_GUESTS").is_some() {
        current.block_on(guests(scale));
    }
    // Not part of the default run: a long loop on the default configuration, for profilers.
    if wanted.contains(&"hello-loop") {
        current.block_on(hello_loop());
    }
}

async fn hello_loop() {
    let runtime = Runtime::new(RuntimeConfig::default()).unwrap();
    let hello = runtime.load_file(programs::HELLO).await.unwrap();
    let started = Instant::now();
    for _ in 0..200_000 {
        invoke_ok(&runtime, &hello, r#"{"name": "Ada"}"#, unlimited()).await;
    }
    println!(
        "hello-loop: {:.1} µs per invocation",
        started.elapsed().as_secs_f64() * 5.0
    );
}

fn request(input: &str, limits: InvocationLimits) -> InvocationRequest {
    InvocationRequest {
        context: InvocationContext {
            tenant: TenantId::new("bench"),
            skill: "bench/skill".parse().unwrap(),
            version: "1.0.0".into(),
            request_id: "bench".into(),
            trace_parent: None,
        },
        input: input.into(),
        limits,
        grants: Grants::default(),
        callers: Vec::new(),
        cancel: None,
        task: None,
    }
}

fn unlimited() -> InvocationLimits {
    InvocationLimits {
        fuel: Some(u64::MAX / 2),
        timeout: Duration::from_secs(60),
        tenant_concurrency: 10_000,
        ..InvocationLimits::default()
    }
}

struct Summary {
    median: Duration,
    p99: Duration,
}

fn summarize(mut samples: Vec<Duration>) -> Summary {
    samples.sort();
    let at = |q: f64| samples[((samples.len() - 1) as f64 * q).round() as usize];
    Summary {
        median: at(0.5),
        p99: at(0.99),
    }
}

fn us(d: Duration) -> String {
    format!("{:.1} µs", d.as_secs_f64() * 1e6)
}

fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1e3)
}

async fn invoke_ok(
    runtime: &Runtime,
    skill: &Arc<LoadedSkill>,
    input: &str,
    limits: InvocationLimits,
) {
    let report = runtime.invoke(skill, request(input, limits)).await;
    assert!(
        report.outcome.output().is_some(),
        "benchmark invocation failed: {report:?}"
    );
}

async fn compile_vs_cache(scale: usize) {
    println!("## Compile vs cached load\n");
    println!("| skill | size | compile + link | load from disk cache + link | speed-up |");
    println!("| --- | ---: | ---: | ---: | ---: |");
    let examples = [
        ("hello", programs::HELLO),
        ("text-stats", programs::TEXT_STATS),
        ("kv-counter", programs::KV_COUNTER),
        ("http-get", programs::HTTP_GET),
    ];
    for (name, path) in examples {
        let wasm = programs::read(path);
        let dir = tempfile::tempdir().unwrap();
        let cached = |dir: &Path| {
            Runtime::new(RuntimeConfig {
                cache_dir: Some(dir.into()),
                ..RuntimeConfig::default()
            })
            .unwrap()
        };
        let mut compile = Vec::new();
        for _ in 0..(5 / scale).max(3) {
            let runtime = Runtime::new(RuntimeConfig::default()).unwrap();
            let started = Instant::now();
            runtime.load(&wasm).await.unwrap();
            compile.push(started.elapsed());
        }
        cached(dir.path()).load(&wasm).await.unwrap();
        let mut load = Vec::new();
        for _ in 0..(20 / scale).max(3) {
            let runtime = cached(dir.path());
            let started = Instant::now();
            runtime.load(&wasm).await.unwrap();
            load.push(started.elapsed());
            assert_eq!(runtime.cache_stats().compiled, 0);
        }
        let (compile, load) = (summarize(compile).median, summarize(load).median);
        println!(
            "| {name} | {} KiB | {} | {} | {:.0}× |",
            wasm.len() / 1024,
            ms(compile),
            ms(load),
            compile.as_secs_f64() / load.as_secs_f64()
        );
    }
    println!();
}

async fn latency(scale: usize) {
    println!("## Fresh store + instance + invoke of `hello`, one task\n");
    println!("| allocator | median | p99 | invocations/s (one task) |");
    println!("| --- | ---: | ---: | ---: |");
    let pooling = |memory_keep_resident_bytes: usize, pagemap_scan| RuntimeConfig {
        allocator: AllocatorConfig::Pooling(PoolConfig {
            memory_keep_resident_bytes,
            table_keep_resident_bytes: memory_keep_resident_bytes.min(64 << 10),
            pagemap_scan,
            ..PoolConfig::default()
        }),
        ..RuntimeConfig::default()
    };
    let configs = [
        ("pooling (default)", RuntimeConfig::default()),
        ("pooling, keep-resident 0 (madvise)", pooling(0, false)),
        (
            "pooling, keep-resident 1 MiB, memset",
            pooling(1 << 20, false),
        ),
        (
            "pooling, keep-resident 1 MiB, pagemap scan",
            pooling(1 << 20, true),
        ),
        (
            "pooling, keep-resident 16 MiB, pagemap scan",
            pooling(16 << 20, true),
        ),
        (
            "on demand",
            RuntimeConfig {
                allocator: AllocatorConfig::OnDemand,
                ..RuntimeConfig::default()
            },
        ),
    ];
    let iterations = 20_000 / scale;
    for (name, config) in configs {
        let runtime = Runtime::new(config).unwrap();
        let hello = runtime.load_file(programs::HELLO).await.unwrap();
        for _ in 0..1000 {
            invoke_ok(&runtime, &hello, r#"{"name": "Ada"}"#, unlimited()).await;
        }
        let mut samples = Vec::with_capacity(iterations);
        let started = Instant::now();
        for _ in 0..iterations {
            let t = Instant::now();
            invoke_ok(&runtime, &hello, r#"{"name": "Ada"}"#, unlimited()).await;
            samples.push(t.elapsed());
        }
        let rate = iterations as f64 / started.elapsed().as_secs_f64();
        let s = summarize(samples);
        println!("| {name} | {} | {} | {rate:.0} |", us(s.median), us(s.p99));
    }
    println!();
}

/// Fresh store + instance + invoke of components named in `OMNIFORGE_BENCH_GUESTS`
/// (`label=path;label=path`), each invoked with `{"name": "Ada"}`.
async fn guests(scale: usize) {
    let Ok(list) = std::env::var("OMNIFORGE_BENCH_GUESTS") else {
        println!("guests: set OMNIFORGE_BENCH_GUESTS=label=path.wasm;… (scripts/bench-sdk.sh)\n");
        return;
    };
    println!("## SDK guests: fresh store + instance + invoke, one task\n");
    println!("| guest | component | compile | median | p99 | fuel per call | peak memory |");
    println!("| --- | ---: | ---: | ---: | ---: | ---: | ---: |");
    let runtime = Runtime::new(RuntimeConfig::default()).unwrap();
    let input = r#"{"name": "Ada"}"#;
    for entry in list.split(';').filter(|e| !e.is_empty()) {
        let (label, path) = entry.split_once('=').expect("label=path");
        let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{path}: {e}"));
        let started = Instant::now();
        let skill = runtime.load(&bytes).await.unwrap();
        let compile = started.elapsed();
        for _ in 0..50 {
            invoke_ok(&runtime, &skill, input, unlimited()).await;
        }
        let report = runtime.invoke(&skill, request(input, unlimited())).await;
        let iterations = 2_000 / scale;
        let mut samples = Vec::with_capacity(iterations);
        for _ in 0..iterations {
            let t = Instant::now();
            invoke_ok(&runtime, &skill, input, unlimited()).await;
            samples.push(t.elapsed());
        }
        let s = summarize(samples);
        let fine = |d: Duration| format!("{:.3} ms", d.as_secs_f64() * 1e3);
        println!(
            "| {label} | {:.1} MiB | {} | {} | {} | {} | {:.1} MiB |",
            bytes.len() as f64 / (1 << 20) as f64,
            ms(compile),
            fine(s.median),
            fine(s.p99),
            report.usage.fuel_consumed,
            report.usage.peak_memory_bytes as f64 / (1 << 20) as f64,
        );
    }
    println!();
}

fn throughput(seconds: u64) {
    println!("## Fresh-instance throughput of `hello` on all cores\n");
    println!(
        "Multi-threaded tokio runtime with one worker per core; each task invokes in a loop.\n"
    );
    println!("| tasks | invocations/s |");
    println!("| ---: | ---: |");
    let workers = cores();
    let tokio = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(workers)
        .enable_all()
        .build()
        .unwrap();
    let runtime = Arc::new(Runtime::new(RuntimeConfig::default()).unwrap());
    let hello = tokio.block_on(runtime.load_file(programs::HELLO)).unwrap();
    for tasks in [workers, workers * 2, workers * 8] {
        let count = Arc::new(AtomicU64::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let handles: Vec<_> = (0..tasks)
            .map(|_| {
                let (runtime, hello) = (runtime.clone(), hello.clone());
                let (count, stop) = (count.clone(), stop.clone());
                tokio.spawn(async move {
                    while !stop.load(Ordering::Relaxed) {
                        invoke_ok(&runtime, &hello, r#"{"name": "Ada"}"#, unlimited()).await;
                        count.fetch_add(1, Ordering::Relaxed);
                    }
                })
            })
            .collect();
        std::thread::sleep(Duration::from_millis(500)); // warm up
        let before = count.load(Ordering::Relaxed);
        let started = Instant::now();
        std::thread::sleep(Duration::from_secs(seconds));
        let done = count.load(Ordering::Relaxed) - before;
        let rate = done as f64 / started.elapsed().as_secs_f64();
        stop.store(true, Ordering::Relaxed);
        for handle in handles {
            tokio.block_on(handle).unwrap();
        }
        println!("| {tasks} | {rate:.0} |");
    }
    println!();
}

async fn metering(scale: usize) {
    println!("## Metering overhead\n");
    let text =
        "The quick brown fox jumps over the lazy dog. Pack my box with five dozen liquor jugs! "
            .repeat(200);
    let text_stats_input = serde_json::json!({ "text": text, "top": 10 }).to_string();
    let workloads = [
        (
            "text-stats, 17 KB of text (JSON in and out)",
            programs::TEXT_STATS,
            text_stats_input.as_str(),
            400 / scale,
        ),
        (
            "spin-loop, 2M iterations (CPU-bound)",
            programs::SPIN_LOOP,
            r#"{"iterations": 2000000}"#,
            60 / scale,
        ),
    ];
    let epochs = DeadlineEnforcement::Epochs {
        tick: Duration::from_millis(1),
    };
    let yields = RuntimeConfig::default().deadlines;
    let configs = [
        ("none", false, DeadlineEnforcement::HostCallsOnly),
        ("fuel only", true, DeadlineEnforcement::HostCallsOnly),
        ("deadline only (epochs)", false, epochs),
        ("fuel + deadline (epochs)", true, epochs),
        ("fuel + deadline (fuel yields, default)", true, yields),
    ];
    for (workload, path, input, iterations) in workloads {
        println!("{workload}:\n");
        println!("| metering | median, no inlining | overhead | median, inlining | overhead |");
        println!("| --- | ---: | ---: | ---: | ---: |");
        let mut baselines: [Option<Duration>; 2] = [None, None];
        for (name, fuel_metering, deadlines) in configs {
            let mut row = format!("| {name} |");
            for (i, inlining) in [false, true].into_iter().enumerate() {
                let runtime = Runtime::new(RuntimeConfig {
                    fuel_metering,
                    deadlines,
                    inlining,
                    ..RuntimeConfig::default()
                })
                .unwrap();
                let skill = runtime.load_file(path).await.unwrap();
                for _ in 0..(iterations / 10).max(2) {
                    invoke_ok(&runtime, &skill, input, unlimited()).await;
                }
                let mut samples = Vec::new();
                for _ in 0..iterations {
                    let t = Instant::now();
                    invoke_ok(&runtime, &skill, input, unlimited()).await;
                    samples.push(t.elapsed());
                }
                let median = summarize(samples).median;
                let base = *baselines[i].get_or_insert(median);
                let overhead = (median.as_secs_f64() / base.as_secs_f64() - 1.0) * 100.0;
                row.push_str(&format!(" {} | {overhead:+.1} % |", us(median)));
            }
            println!("{row}");
        }
        println!();
    }
}

/// What yielding more often costs CPU-bound guests: the same loop on runtimes that differ
/// only in the fuel between yields, taking turns so drifting machine load hits all alike.
async fn slices(scale: usize) {
    println!("## Fuel between yields\n");
    let intervals = [1_000_000u64, 200_000, 100_000];
    let mut runtimes = Vec::new();
    for interval in intervals {
        let runtime = Runtime::new(RuntimeConfig {
            deadlines: DeadlineEnforcement::FuelYields { interval },
            ..RuntimeConfig::default()
        })
        .unwrap();
        let spin = runtime.load_file(programs::SPIN_LOOP).await.unwrap();
        let stats = runtime.load_file(programs::TEXT_STATS).await.unwrap();
        runtimes.push((runtime, spin, stats));
    }
    let text =
        "The quick brown fox jumps over the lazy dog. Pack my box with five dozen liquor jugs! "
            .repeat(200);
    let stats_input = serde_json::json!({ "text": text, "top": 10 }).to_string();
    let spin_input = r#"{"iterations": 20000000}"#;
    let rounds = 40 / scale;
    let mut samples = vec![(Vec::new(), Vec::new()); intervals.len()];
    for _ in 0..rounds.max(4) {
        for (i, (runtime, spin, stats)) in runtimes.iter().enumerate() {
            let t = Instant::now();
            invoke_ok(runtime, spin, spin_input, unlimited()).await;
            samples[i].0.push(t.elapsed());
            let t = Instant::now();
            for _ in 0..20 {
                invoke_ok(runtime, stats, &stats_input, unlimited()).await;
            }
            samples[i].1.push(t.elapsed() / 20);
        }
    }
    println!(
        "| fuel between yields | spin-loop 20M iterations, median | text-stats 17 KB, median |"
    );
    println!("| ---: | ---: | ---: |");
    for (interval, (spin, stats)) in intervals.iter().zip(samples) {
        println!(
            "| {interval} | {} | {} |",
            us(summarize(spin).median),
            us(summarize(stats).median)
        );
    }
    println!();
}

fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

fn cpu_model() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|info| {
            info.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|m| m.trim().to_owned())
        })
        .unwrap_or_else(|| "unknown CPU".into())
}
