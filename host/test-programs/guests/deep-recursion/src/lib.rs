//! Recurses without bound until the wasm stack overflows.
#![allow(unconditional_recursion)]

wit_bindgen::generate!({ path: "../../../../wit", world: "omniforge:skill/tool" });

use exports::omniforge::skill::handler::Guest;
use omniforge::skill::types::{Invocation, SkillError};

struct DeepRecursion;

#[inline(never)]
fn descend(depth: u64, trail: &mut [u64; 16]) -> u64 {
    trail[(depth % 16) as usize] = depth;
    // black_box keeps the compiler from turning the recursion into a loop.
    std::hint::black_box(descend(depth + 1, std::hint::black_box(trail))) + trail[0]
}

impl Guest for DeepRecursion {
    fn invoke(_ctx: Invocation, _input: String) -> Result<String, SkillError> {
        let mut trail = [0u64; 16];
        Ok(descend(0, &mut trail).to_string())
    }
}

export!(DeepRecursion);
