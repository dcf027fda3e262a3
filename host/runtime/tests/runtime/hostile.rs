//! Hostile guests end with their typed outcome within their limits, and the runtime keeps
//! serving normal invocations afterwards.

use std::time::{Duration, Instant};

use omniforge_runtime::{
    AllocatorConfig, DeadlineEnforcement, InvocationLimits, Outcome, PoolConfig, Runtime,
    RuntimeConfig,
};
use omniforge_test_programs as programs;

use crate::common::{invoke, load, ok_output, request, runtime};

fn limits(f: impl FnOnce(&mut InvocationLimits)) -> InvocationLimits {
    let mut limits = InvocationLimits::default();
    f(&mut limits);
    limits
}

#[tokio::test]
async fn an_infinite_loop_is_stopped_by_the_fuel_limit() {
    let skill = load(runtime(), programs::SPIN_LOOP).await;
    let mut req = request("fuel", "{}");
    req.limits = limits(|l| {
        l.fuel = Some(5_000_000);
        l.timeout = Duration::from_secs(30);
    });
    let report = runtime().invoke(&skill, req).await;
    assert_eq!(report.outcome, Outcome::FuelExhausted { limit: 5_000_000 });
    assert_eq!(report.usage.fuel_consumed, 5_000_000);
}

#[tokio::test]
async fn an_infinite_loop_is_stopped_by_its_cancel_and_reports_what_it_used() {
    let skill = load(runtime(), programs::SPIN_LOOP).await;
    let mut req = request("cancel", "{}");
    req.limits = limits(|l| {
        l.fuel = Some(1_000_000_000_000);
        l.timeout = Duration::from_secs(30);
    });
    let cancel = tokio_util::sync::CancellationToken::new();
    req.cancel = Some(cancel.clone());
    let started = Instant::now();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(200)).await;
        cancel.cancel();
    });
    let report = runtime().invoke(&skill, req).await;
    assert_eq!(report.outcome, Outcome::Canceled);
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "stopped late: {:?}",
        started.elapsed()
    );
    assert!(
        report.usage.fuel_consumed > 1_000_000,
        "what it burned until the cancel is reported: {:?}",
        report.usage
    );
    assert!(report.usage.wall_time_us >= 200_000, "{:?}", report.usage);
}

#[tokio::test]
async fn an_infinite_loop_is_stopped_by_the_deadline_when_unmetered() {
    let skill = load(runtime(), programs::SPIN_LOOP).await;
    let mut req = request("deadline", "{}");
    req.limits = limits(|l| {
        l.fuel = None;
        l.timeout = Duration::from_millis(200);
    });
    let started = Instant::now();
    let report = runtime().invoke(&skill, req).await;
    assert_eq!(report.outcome, Outcome::Timeout { limit_ms: 200 });
    assert!(started.elapsed() >= Duration::from_millis(200));
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "stopped late: {:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn an_infinite_loop_is_stopped_by_the_deadline_without_fuel_metering() {
    let runtime = Runtime::new(RuntimeConfig {
        fuel_metering: false,
        deadlines: DeadlineEnforcement::Epochs {
            tick: Duration::from_millis(1),
        },
        ..RuntimeConfig::default()
    })
    .unwrap();
    let skill = load(&runtime, programs::SPIN_LOOP).await;
    let mut req = request("no-fuel", "{}");
    req.limits = limits(|l| l.timeout = Duration::from_millis(150));
    let started = Instant::now();
    let report = runtime.invoke(&skill, req).await;
    assert_eq!(report.outcome, Outcome::Timeout { limit_ms: 150 });
    assert_eq!(report.usage.fuel_consumed, 0);
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "stopped late: {:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn deadlines_through_fuel_yields_need_fuel_metering() {
    let config = RuntimeConfig {
        fuel_metering: false,
        ..RuntimeConfig::default()
    };
    assert!(Runtime::new(config).is_err());
}

#[tokio::test]
async fn a_guest_blocked_in_a_host_call_is_stopped_by_the_deadline() {
    let skill = load(runtime(), programs::SLEEPER).await;
    let mut req = request("sleeper", r#"{"ms": 60000}"#);
    req.limits = limits(|l| l.timeout = Duration::from_millis(250));
    let started = Instant::now();
    let report = runtime().invoke(&skill, req).await;
    assert_eq!(report.outcome, Outcome::Timeout { limit_ms: 250 });
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "stopped late: {:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn a_short_sleep_within_the_deadline_succeeds() {
    let report = invoke(programs::SLEEPER, r#"{"ms": 20}"#).await;
    assert_eq!(ok_output(&report)["slept_ms"], 20);
    assert!(report.usage.wall_time_us >= 20_000);
}

#[tokio::test]
async fn unbounded_memory_growth_hits_the_memory_limit() {
    let skill = load(runtime(), programs::MEMORY_HOG).await;
    let mut req = request("memory", "{}");
    req.limits = limits(|l| l.memory_bytes = 32 << 20);
    let report = runtime().invoke(&skill, req).await;
    assert_eq!(
        report.outcome,
        Outcome::MemoryLimit {
            limit_bytes: 32 << 20
        },
        "{report:?}"
    );
    assert!(
        report.usage.peak_memory_bytes <= 32 << 20,
        "{:?}",
        report.usage
    );
    assert!(
        report.usage.peak_memory_bytes > 16 << 20,
        "{:?}",
        report.usage
    );
}

#[tokio::test]
async fn memory_within_the_limit_is_fine() {
    let report = invoke(programs::MEMORY_HOG, r#"{"mib": 4}"#).await;
    assert_eq!(ok_output(&report)["held_bytes"], 4 << 20);
}

#[tokio::test]
async fn unbounded_recursion_traps_with_a_stack_overflow() {
    let report = invoke(programs::DEEP_RECURSION, "{}").await;
    match &report.outcome {
        Outcome::Trap { message } => assert!(message.contains("call stack exhausted"), "{message}"),
        other => panic!("expected a trap, got {other:?}"),
    }
}

#[tokio::test]
async fn a_panic_traps_with_the_panic_message() {
    let report = invoke(programs::PANIC, "{}").await;
    match &report.outcome {
        Outcome::Trap { message } => {
            assert!(
                message.contains("the guest gave up on purpose"),
                "{message}"
            )
        }
        other => panic!("expected a trap, got {other:?}"),
    }
    assert!(
        report.stderr.contains("the guest gave up on purpose"),
        "{:?}",
        report.stderr
    );
}

#[tokio::test]
async fn files_environment_arguments_and_sockets_are_not_reachable() {
    let report = invoke(programs::ESCAPE, r#"{"connect": "127.0.0.1:5432"}"#).await;
    let found = ok_output(&report);
    assert_eq!(found["env"], serde_json::json!([]), "{found}");
    assert_eq!(found["args"], serde_json::json!([]), "{found}");
    // wasi-libc answers the working directory itself ("/") without asking the host.
    assert!(
        found["cwd"].get("error").is_some() || found["cwd"]["ok"] == "\"/\"",
        "{found}"
    );
    for attempt in [
        "read_root",
        "read_passwd",
        "write_file",
        "tcp_connect",
        "tcp_listen",
        "udp_bind",
        "dns",
    ] {
        assert!(
            found[attempt].get("error").is_some(),
            "{attempt} should fail: {found}"
        );
    }
}

#[tokio::test]
async fn a_log_flood_is_bounded_and_does_not_fail_the_skill() {
    let report = invoke(programs::LOG_FLOOD, r#"{"messages": 5000, "bytes": 10000}"#).await;
    assert_eq!(ok_output(&report)["written"], 5000);
    let config = runtime().config().log;
    let usage = report.usage;
    assert!(usage.log_messages <= config.max_messages, "{usage:?}");
    assert!(
        usage.log_messages as usize * config.max_message_bytes
            <= config.max_total_bytes + config.max_message_bytes,
        "{usage:?}"
    );
    assert_eq!(usage.log_messages + usage.log_dropped, 5000, "{usage:?}");
}

#[tokio::test]
async fn output_over_the_limit_is_refused() {
    let skill = load(runtime(), programs::OUTPUT_FLOOD).await;
    let mut req = request("output", r#"{"bytes": 100000}"#);
    req.limits = limits(|l| l.output_bytes = 10_000);
    let report = runtime().invoke(&skill, req).await;
    assert_eq!(
        report.outcome,
        Outcome::OutputLimit {
            size_bytes: 100_000,
            limit_bytes: 10_000
        }
    );
}

#[tokio::test]
async fn no_state_survives_between_invocations() {
    let skill = load(runtime(), programs::GLOBAL_STATE).await;
    for _ in 0..3 {
        let output = ok_output(&runtime().invoke(&skill, request("state", "{}")).await);
        assert_eq!(output, serde_json::json!({"calls": 1, "previous_mark": 0}));
    }
}

#[tokio::test]
async fn a_tenant_at_its_concurrency_limit_is_refused_and_others_are_not() {
    let sleeper = load(runtime(), programs::SLEEPER).await;
    let hello = load(runtime(), programs::HELLO).await;
    let mut slow = request("busy-tenant", r#"{"ms": 400}"#);
    slow.limits.tenant_concurrency = 1;
    let mut blocked = request("busy-tenant", r#"{"name": "B"}"#);
    blocked.limits.tenant_concurrency = 1;
    let (slow, blocked, other) = tokio::join!(
        runtime().invoke(&sleeper, slow),
        async {
            tokio::time::sleep(Duration::from_millis(100)).await;
            runtime().invoke(&hello, blocked).await
        },
        async {
            tokio::time::sleep(Duration::from_millis(100)).await;
            runtime()
                .invoke(&hello, request("calm-tenant", r#"{"name": "C"}"#))
                .await
        },
    );
    assert!(slow.outcome.output().is_some(), "{slow:?}");
    assert!(
        matches!(blocked.outcome, Outcome::ConcurrencyLimit { .. }),
        "{blocked:?}"
    );
    assert!(other.outcome.output().is_some(), "{other:?}");
}

/// Every hostile guest, then 100 normal invocations, on a runtime whose pool has only four
/// instance slots: a leaked slot or poisoned state would make the normal calls fail.
#[tokio::test]
async fn the_runtime_keeps_serving_after_every_hostile_guest() {
    let pool = PoolConfig {
        component_instances: 4,
        core_instances: 64,
        memories: 8,
        tables: 16,
        ..PoolConfig::default()
    };
    let runtime = Runtime::new(RuntimeConfig {
        allocator: AllocatorConfig::Pooling(pool),
        ..RuntimeConfig::default()
    })
    .unwrap();
    let hostile = [
        (programs::SPIN_LOOP, "{}"),
        (programs::MEMORY_HOG, "{}"),
        (programs::DEEP_RECURSION, "{}"),
        (programs::PANIC, "{}"),
        (programs::ESCAPE, "{}"),
        (programs::LOG_FLOOD, r#"{"messages": 2000, "bytes": 1000}"#),
        (programs::SLEEPER, "{}"),
        (programs::OUTPUT_FLOOD, r#"{"bytes": 5000000}"#),
    ];
    for (path, input) in hostile {
        let skill = load(&runtime, path).await;
        for _ in 0..2 {
            let mut req = request("hostile", input);
            req.limits = limits(|l| {
                l.fuel = Some(50_000_000);
                l.memory_bytes = 16 << 20;
                l.timeout = Duration::from_millis(200);
            });
            let report = runtime.invoke(&skill, req).await;
            assert!(
                report.outcome.output().is_none()
                    || path == programs::ESCAPE
                    || path == programs::LOG_FLOOD,
                "{path}: {report:?}"
            );
        }
    }
    let hello = load(&runtime, programs::HELLO).await;
    for i in 0..100 {
        let report = runtime
            .invoke(
                &hello,
                request("hostile", &format!(r#"{{"name": "n{i}"}}"#)),
            )
            .await;
        assert_eq!(ok_output(&report)["greeting"], format!("Hello, n{i}!"));
    }
}

#[tokio::test]
async fn a_tenant_cannot_flood_the_log_across_invocations() {
    let runtime = Runtime::new(RuntimeConfig {
        log: omniforge_runtime::capabilities::LogLimits {
            tenant_messages_per_second: 1,
            tenant_burst: 30,
            ..Default::default()
        },
        ..RuntimeConfig::default()
    })
    .unwrap();
    let skill = load(&runtime, programs::LOG_FLOOD).await;
    let input = r#"{"messages": 20, "bytes": 10}"#;
    let first = runtime.invoke(&skill, request("chatty", input)).await.usage;
    let second = runtime.invoke(&skill, request("chatty", input)).await.usage;
    let other = runtime.invoke(&skill, request("quiet", input)).await.usage;
    assert_eq!((first.log_messages, first.log_dropped), (20, 0));
    assert!(
        second.log_messages <= 11,
        "the burst of 30 is spent: {second:?}"
    );
    assert_eq!(other.log_messages, 20, "another tenant has its own budget");
}

/// `#[tokio::test]` runs on one thread: only the guest's periodic yields let the second
/// invocation run while the first spins.
#[tokio::test]
async fn a_busy_guest_does_not_starve_other_invocations_on_its_thread() {
    let spin = load(runtime(), programs::SPIN_LOOP).await;
    let hello = load(runtime(), programs::HELLO).await;
    let mut busy = request("busy-thread", "{}");
    busy.limits = limits(|l| {
        l.fuel = None;
        l.timeout = Duration::from_millis(300);
    });
    let started = Instant::now();
    let (busy, greeted_after) = tokio::join!(runtime().invoke(&spin, busy), async {
        tokio::time::sleep(Duration::from_millis(20)).await;
        let report = runtime()
            .invoke(&hello, request("neighbour", r#"{"name": "N"}"#))
            .await;
        assert!(report.outcome.output().is_some(), "{report:?}");
        started.elapsed()
    });
    assert_eq!(busy.outcome, Outcome::Timeout { limit_ms: 300 });
    assert!(
        greeted_after < Duration::from_millis(250),
        "hello waited {greeted_after:?}"
    );
}
