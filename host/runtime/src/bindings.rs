//! Host bindings generated from the `omniforge:skill` WIT package. Private: capabilities
//! implement the generated `Host` traits, and the runtime uses `SkillPre` to instantiate.

#![allow(missing_docs)]

wasmtime::component::bindgen!({
    path: "../../wit",
    world: "omniforge:skill/skill",
    imports: {
        "omniforge:skill/kv": async,
        "omniforge:skill/secrets": async,
        default: trappable,
    },
    exports: { default: async },
    with: {
        "wasi:http": wasmtime_wasi_http::p2::bindings::http,
        "wasi:io": wasmtime_wasi::p2::bindings::io,
        "wasi:clocks": wasmtime_wasi::p2::bindings::clocks,
    },
});
