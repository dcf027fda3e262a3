//! Feeds arbitrary bytes to the package pipeline (archive, manifest, schemas, component):
//! it must return an error or a package, never panic, hang or allocate without bound.

#![no_main]

use libfuzzer_sys::fuzz_target;
use omniforge_registry::{PackageLimits, validate_package};

fuzz_target!(|data: &[u8]| {
    let _ = validate_package(data, &PackageLimits::default());
});
