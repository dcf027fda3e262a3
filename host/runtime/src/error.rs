//! Errors of the runtime's own operations (building it, loading a component).
//!
//! Invocations do not fail with these: how an invocation ended is an
//! [`Outcome`](crate::Outcome). These errors are for the operator or the skill author:
//! a runtime that cannot start, or a component that cannot be run at all.

use thiserror::Error;

/// The runtime could not be built.
#[derive(Debug, Error)]
pub enum RuntimeError {
    /// The wasmtime engine rejected its configuration.
    #[error("cannot build the wasm engine: {0}")]
    Engine(String),
    /// The artifact cache directory is unusable.
    #[error("cannot use the artifact cache directory {path}: {source}")]
    CacheDir {
        /// The directory.
        path: std::path::PathBuf,
        /// Why.
        source: std::io::Error,
    },
}

/// A component could not be loaded.
#[derive(Debug, Error)]
pub enum LoadError {
    /// The component file could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: std::path::PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The bytes are not a valid WebAssembly component (or not wasm at all).
    #[error("not a valid WebAssembly component: {0}")]
    InvalidComponent(String),
    /// The component does not export `omniforge:skill/handler@0.1` with the right type.
    #[error("the component is not an OmniForge skill: {0}")]
    NotASkill(String),
    /// The component imports something this runtime does not provide.
    #[error("the component imports something OmniForge does not provide: {0}")]
    UnsupportedImport(String),
    /// Compilation failed for another reason (a compiler worker crashed, for example).
    #[error("compiling the component failed: {0}")]
    Compile(String),
}
