//! Panics with a recognisable message.

wit_bindgen::generate!({ path: "../../../../wit", world: "omniforge:skill/tool" });

use exports::omniforge::skill::handler::Guest;
use omniforge::skill::types::{Invocation, SkillError};

struct Panic;

impl Guest for Panic {
    fn invoke(_ctx: Invocation, _input: String) -> Result<String, SkillError> {
        panic!("the guest gave up on purpose");
    }
}

export!(Panic);
