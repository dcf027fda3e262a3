//! # omniforge-workflow
//!
//! Workflow documents: what an agent runs. A document is a list of steps (`skill`,
//! `sequence`, `parallel`, `map`, `switch`, `agent`) with data passed between them by CEL
//! expressions over the run's `input` and `steps.<id>.output`.
//!
//! This crate knows the format and nothing else: [`document`] is its single definition (serde
//! reads it; [`schema`] derives the published JSON Schema from it), [`parse`] reads JSON or
//! YAML with errors that point at the field, [`validate`] checks what types cannot say and
//! compiles the expressions ([`expr`]) into a [`Plan`]; [`reliability`] holds the rules of
//! retries and circuit breakers as pure functions of time; [`engine`] runs a plan durably
//! from its journal against a host that does the I/O. Resolving the skills a document names,
//! the journal's storage and the invocations are the platform's (`omniforge-control`).
//!
//! ```
//! let plan = omniforge_workflow::parse::plan(
//!     r#"{"steps": [{"id": "greet", "kind": "skill", "skill": "examples/hello",
//!                    "input": {"name": "${input.who}"}}]}"#,
//!     omniforge_workflow::Format::Json,
//! )
//! .unwrap();
//! assert_eq!(plan.workflow().skill_steps().count(), 1);
//! ```

pub mod document;
pub mod engine;
pub mod expr;
pub mod parse;
pub mod reliability;
pub mod schema;
pub mod validate;

pub use document::{Step, Workflow};
pub use parse::Format;
pub use validate::{Plan, Problem};

#[cfg(test)]
mod tests;
