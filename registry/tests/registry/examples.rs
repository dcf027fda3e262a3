//! The example skills pack from their directories, validate, and run from their packages;
//! a wasip1 core module is adapted and runs.

use std::time::Duration;

use omniforge_registry::{
    PackageLimits, Sha256Digest, SigningKey, World, sign_package, validate_package,
};
use omniforge_runtime::{
    Grants, InvocationContext, InvocationLimits, InvocationRequest, Runtime, RuntimeConfig,
    TenantId,
};
use omniforge_test_programs as programs;

use crate::common::{HELLO_MANIFEST, pack_example, zip_of};

async fn run(component: &[u8], input: &str, grants: Grants) -> serde_json::Value {
    let runtime = Runtime::new(RuntimeConfig::default()).unwrap();
    let skill = runtime.load(component).await.unwrap();
    let request = InvocationRequest {
        context: InvocationContext {
            tenant: TenantId::new("registry-tests"),
            skill: "examples/x".parse().unwrap(),
            version: "0.1.0".into(),
            request_id: "r".into(),
            trace_parent: None,
        },
        input: input.into(),
        limits: InvocationLimits {
            timeout: Duration::from_secs(10),
            ..Default::default()
        },
        grants,
        callers: Vec::new(),
        cancel: None,
        task: None,
    };
    let report = runtime.invoke(&skill, request).await;
    serde_json::from_str(
        report
            .outcome
            .output()
            .unwrap_or_else(|| panic!("{report:?}")),
    )
    .unwrap()
}

#[tokio::test]
async fn every_example_packs_validates_and_runs_from_its_package() {
    let examples = [
        ("hello", programs::HELLO, World::Tool),
        ("text-stats", programs::TEXT_STATS, World::Tool),
        ("kv-counter", programs::KV_COUNTER, World::Skill),
        ("http-get", programs::HTTP_GET, World::Skill),
    ];
    for (name, wasm, world) in examples {
        let (bytes, packed) = pack_example(name, wasm);
        let package = validate_package(&bytes, &PackageLimits::default()).unwrap();
        assert_eq!(
            package.manifest.package.name.as_str(),
            format!("examples/{name}")
        );
        assert_eq!(package.manifest.skill.world, world);
        assert_eq!(package.package_sha256, Sha256Digest::of(&bytes));
        assert_eq!(package.wasm_sha256, Sha256Digest::of(&programs::read(wasm)));
        assert_eq!(packed.package_sha256, package.package_sha256);
        assert!(!package.component_info.adapted_from_core_module);
        let (again, _) = pack_example(name, wasm);
        assert_eq!(again, bytes, "{name}: packing is reproducible");
    }
    let (bytes, _) = pack_example("text-stats", programs::TEXT_STATS);
    let stats = validate_package(&bytes, &PackageLimits::default()).unwrap();
    assert!(
        stats.files.contains_key("schemas/input.json"),
        "{:?}",
        stats.files
    );
    assert!(stats.input_schema.is_some() && stats.output_schema.is_some());
    assert!(stats.readme.as_deref().unwrap().contains("text-stats"));
    let output = run(
        &stats.component,
        r#"{"text": "a b a", "top": 1}"#,
        Grants::default(),
    )
    .await;
    assert_eq!(output["top_words"][0]["word"], "a");

    let (bytes, _) = pack_example("kv-counter", programs::KV_COUNTER);
    let kv = validate_package(&bytes, &PackageLimits::default()).unwrap();
    assert!(kv.manifest.permissions.kv);
    let grants = Grants {
        kv: true,
        ..Grants::default()
    };
    assert_eq!(
        run(&kv.component, r#"{"key": "k"}"#, grants).await["count"],
        1
    );
}

#[tokio::test]
async fn a_wasip1_core_module_is_adapted_into_a_component_and_runs() {
    let module = programs::read(programs::HELLO_WASIP1);
    assert!(
        module.starts_with(b"\0asm\x01\0\0\0"),
        "built as a core module"
    );
    let bytes = zip_of(&[
        ("omniforge.toml", HELLO_MANIFEST.as_bytes()),
        ("skill.wasm", &module),
    ]);
    let package = validate_package(&bytes, &PackageLimits::default()).unwrap();
    assert!(package.component_info.adapted_from_core_module);
    assert_ne!(package.component_sha256, package.wasm_sha256);
    let output = run(
        &package.component,
        r#"{"name": "Preview One"}"#,
        Grants::default(),
    )
    .await;
    assert_eq!(output["greeting"], "Hello, Preview One!");
}

#[test]
fn a_signed_package_verifies_and_a_changed_one_does_not() {
    let (bytes, _) = pack_example("hello", programs::HELLO);
    let key = SigningKey::generate();
    let signed = sign_package(&bytes, &key, &PackageLimits::default()).unwrap();
    let package = validate_package(&signed, &PackageLimits::default()).unwrap();
    package.verify_signature(&key.verifying_key()).unwrap();
    assert!(
        package
            .verify_signature(&SigningKey::generate().verifying_key())
            .is_err()
    );

    let unsigned = validate_package(&bytes, &PackageLimits::default()).unwrap();
    assert!(unsigned.verify_signature(&key.verifying_key()).is_err());

    // Swap in another component but keep the signature: verification must fail.
    let mut files = omniforge_registry::read_archive(&signed, &PackageLimits::default()).unwrap();
    files.insert("skill.wasm".into(), programs::read(programs::TEXT_STATS));
    let tampered = omniforge_registry::write_archive(&files);
    let tampered = validate_package(&tampered, &PackageLimits::default()).unwrap();
    let err = tampered.verify_signature(&key.verifying_key()).unwrap_err();
    assert!(err.to_string().contains("skill.wasm"), "{err}");
}

#[test]
fn swapping_a_schema_in_a_signed_package_breaks_the_signature() {
    let (bytes, _) = pack_example("text-stats", programs::TEXT_STATS);
    let key = SigningKey::generate();
    let signed = sign_package(&bytes, &key, &PackageLimits::default()).unwrap();
    let limits = PackageLimits::default();
    let mut files = omniforge_registry::read_archive(&signed, &limits).unwrap();
    files.insert("schemas/input.json".into(), b"{}".to_vec());
    let loosened = omniforge_registry::write_archive(&files);
    let package = validate_package(&loosened, &limits).unwrap();
    let err = package.verify_signature(&key.verifying_key()).unwrap_err();
    assert!(err.to_string().contains("other files"), "{err}");
}
