//! Runtime tests with real guests built from source: the example skills, hostile guests,
//! capabilities and the artifact cache. One test binary (linking wasmtime is slow).

mod cache;
mod capabilities;
mod common;
mod examples;
mod hostile;
