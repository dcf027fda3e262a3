//! The fuzz harness (`validate_package`, also the cargo-fuzz target in registry/fuzz) run as
//! an ordinary test: over the bad-package corpus and over valid packages mutated by proptest
//! (byte flips, truncations, entry renames). No input may panic or take unbounded time.

use std::time::{Duration, Instant};

use omniforge_registry::{PackageLimits, validate_package};
use proptest::prelude::*;

use crate::common::{HELLO_MANIFEST, hello_package};
use crate::corpus::corpus;

/// What the fuzz target does with one input; returns how long it took.
fn harness(bytes: &[u8]) -> Duration {
    let started = Instant::now();
    let _ = validate_package(bytes, &PackageLimits::default());
    started.elapsed()
}

#[test]
fn the_bad_corpus_goes_through_the_harness() {
    for (case, bytes, _) in corpus() {
        let took = harness(&bytes);
        assert!(took < Duration::from_secs(10), "{case} took {took:?}");
    }
}

#[derive(Debug, Clone)]
enum Mutation {
    Flip { at: usize, mask: u8 },
    Truncate { at: usize },
    Rename { which: usize, to: String },
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        (any::<usize>(), 1u8..=255).prop_map(|(at, mask)| Mutation::Flip { at, mask }),
        any::<usize>().prop_map(|at| Mutation::Truncate { at }),
        (0usize..3, "[a-z./]{10}").prop_map(|(which, to)| Mutation::Rename { which, to }),
    ]
}

fn apply(mut bytes: Vec<u8>, mutation: &Mutation) -> Vec<u8> {
    match mutation {
        Mutation::Flip { at, mask } => {
            let at = at % bytes.len();
            bytes[at] ^= mask;
        }
        Mutation::Truncate { at } => bytes.truncate(at % bytes.len()),
        Mutation::Rename { which, to } => {
            // Entry names appear in local headers and in the central directory; rename every
            // occurrence of one of them to another name of the same length.
            let names: [&[u8]; 3] = [b"skill.wasm", b"omniforge.", b"README.md."];
            let from = names[*which];
            let to = &to.as_bytes()[..from.len().min(to.len())];
            let mut i = 0;
            while i + from.len() <= bytes.len() {
                if &bytes[i..i + from.len()] == from {
                    bytes[i..i + to.len()].copy_from_slice(to);
                }
                i += 1;
            }
        }
    }
    bytes
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 300, ..ProptestConfig::default() })]

    #[test]
    fn mutated_packages_never_panic_or_hang(
        mutations in proptest::collection::vec(mutation(), 1..6),
    ) {
        let base = hello_package(HELLO_MANIFEST);
        let bytes = mutations.iter().fold(base, |bytes, m| {
            if bytes.is_empty() { bytes } else { apply(bytes, m) }
        });
        let took = harness(&bytes);
        prop_assert!(took < Duration::from_secs(10), "took {:?}", took);
    }
}
