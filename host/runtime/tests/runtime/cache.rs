//! Loading: the artifact cache survives restarts, and bad components are refused clearly.

use omniforge_runtime::{LoadError, Runtime, RuntimeConfig};
use omniforge_test_programs as programs;

use crate::common::{ok_output, request};

fn runtime_with_cache(dir: &std::path::Path) -> Runtime {
    Runtime::new(RuntimeConfig {
        cache_dir: Some(dir.to_owned()),
        ..RuntimeConfig::default()
    })
    .unwrap()
}

#[tokio::test]
async fn a_restart_loads_compiled_artifacts_without_compiling() {
    let dir = tempfile::tempdir().unwrap();
    let wasm = programs::read(programs::HELLO);

    let first = runtime_with_cache(dir.path());
    first.load(&wasm).await.unwrap();
    first.load(&wasm).await.unwrap();
    let stats = first.cache_stats();
    assert_eq!(
        (stats.compiled, stats.loaded_from_disk, stats.memory_hits),
        (1, 0, 1)
    );
    drop(first);

    let restarted = runtime_with_cache(dir.path());
    let skill = restarted.load(&wasm).await.unwrap();
    let stats = restarted.cache_stats();
    assert_eq!((stats.compiled, stats.loaded_from_disk), (0, 1));
    let report = restarted
        .invoke(&skill, request("cache", r#"{"name": "Cache"}"#))
        .await;
    assert_eq!(ok_output(&report)["greeting"], "Hello, Cache!");
}

#[tokio::test]
async fn a_corrupt_cached_artifact_is_replaced_by_a_fresh_compile() {
    let dir = tempfile::tempdir().unwrap();
    let wasm = programs::read(programs::HELLO);
    runtime_with_cache(dir.path()).load(&wasm).await.unwrap();
    for entry in walk(dir.path()) {
        std::fs::write(entry, b"not an artifact").unwrap();
    }
    let runtime = runtime_with_cache(dir.path());
    let skill = runtime.load(&wasm).await.unwrap();
    assert_eq!(runtime.cache_stats().compiled, 1);
    let report = runtime
        .invoke(&skill, request("cache", r#"{"name": "Again"}"#))
        .await;
    assert_eq!(ok_output(&report)["greeting"], "Hello, Again!");
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            files.extend(walk(&path));
        } else {
            files.push(path);
        }
    }
    assert!(!files.is_empty() || dir.file_name().is_some());
    files
}

#[tokio::test]
async fn bytes_that_are_not_a_component_are_refused() {
    let runtime = Runtime::new(RuntimeConfig::default()).unwrap();
    for bad in [&b"definitely not wasm"[..], b"\0asm\x01\0\0\0", b"(module)"] {
        match runtime.load(bad).await {
            Err(LoadError::InvalidComponent(_)) => {}
            other => panic!(
                "expected InvalidComponent, got {:?}",
                other.map(|s| s.digest())
            ),
        }
    }
}

#[tokio::test]
async fn a_component_without_the_handler_is_not_a_skill() {
    let runtime = Runtime::new(RuntimeConfig::default()).unwrap();
    match runtime.load(b"(component)").await {
        Err(LoadError::NotASkill(message)) => assert!(message.contains("handler"), "{message}"),
        other => panic!("expected NotASkill, got {:?}", other.map(|s| s.digest())),
    }
}

#[tokio::test]
async fn a_component_importing_an_unknown_interface_is_refused() {
    let runtime = Runtime::new(RuntimeConfig::default()).unwrap();
    let wat = br#"(component (import "acme:secret/vault" (instance (export "get" (func)))))"#;
    match runtime.load(wat).await {
        Err(LoadError::UnsupportedImport(message)) => {
            assert!(message.contains("acme:secret/vault"), "{message}")
        }
        other => panic!(
            "expected UnsupportedImport, got {:?}",
            other.map(|s| s.digest())
        ),
    }
}
