//! Paths of the example skills and hostile guests, built from source by this crate's build
//! script, for the tests and benchmarks of the other crates.
//!
//! ```no_run
//! let wasm: Vec<u8> = omniforge_test_programs::read(omniforge_test_programs::HELLO);
//! assert!(wasm.starts_with(b"\0asm"));
//! ```

include!(concat!(env!("OUT_DIR"), "/programs.rs"));

/// Reads a built guest component, panicking with the path if it is missing.
pub fn read(path: &str) -> Vec<u8> {
    std::fs::read(path).unwrap_or_else(|e| panic!("cannot read guest {path}: {e}"))
}
