//! Counts its calls in a global. In a fresh instance per invocation the count is always 1;
//! anything else means state leaked between invocations.

wit_bindgen::generate!({ path: "../../../../wit", world: "omniforge:skill/tool" });

use exports::omniforge::skill::handler::Guest;
use omniforge::skill::types::{Invocation, SkillError};

use std::sync::atomic::{AtomicU64, Ordering};

static CALLS: AtomicU64 = AtomicU64::new(0);
static mut SCRATCH: [u8; 4096] = [0; 4096];

struct GlobalState;

impl Guest for GlobalState {
    fn invoke(_ctx: Invocation, _input: String) -> Result<String, SkillError> {
        let calls = CALLS.fetch_add(1, Ordering::SeqCst) + 1;
        // Also dirty a static buffer: a reused linear memory would show the previous mark.
        #[allow(static_mut_refs)]
        let previous_mark = unsafe {
            let previous = SCRATCH[100];
            SCRATCH[100] = 0x5A;
            previous
        };
        Ok(format!(
            "{{\"calls\": {calls}, \"previous_mark\": {previous_mark}}}"
        ))
    }
}

export!(GlobalState);
