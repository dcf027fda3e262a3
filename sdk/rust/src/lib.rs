//! Write [OmniForge](https://github.com/omniforge/omniforge) skills in Rust.
//!
//! A skill is a plain function from a deserializable input to a serializable output. The SDK
//! parses the caller's JSON into your input type, runs your function in the host's sandbox
//! and writes your output back as JSON; errors become the skill's own error
//! (`skill-error` in the WIT), which callers see as `422 skill-error`.
//!
//! ```no_run
//! use omniforge_sdk::{Context, Error, log};
//! use serde::{Deserialize, Serialize};
//!
//! #[derive(Deserialize)]
//! struct Input {
//!     name: String,
//! }
//!
//! #[derive(Serialize)]
//! struct Output {
//!     greeting: String,
//! }
//!
//! fn greet(ctx: Context, input: Input) -> Result<Output, Error> {
//!     if input.name.trim().is_empty() {
//!         return Err(Error::invalid_input("name must not be blank"));
//!     }
//!     log::info(&format!("greeting {} for {}", input.name, ctx.tenant));
//!     Ok(Output { greeting: format!("Hello, {}!", input.name) })
//! }
//!
//! omniforge_sdk::skill!(greet);
//! ```
//!
//! Build with `omniforge skill build` (or `cargo build --release --target wasm32-wasip2`):
//! the crate must be a `cdylib`. What the skill may use beyond logging is declared in its
//! `omniforge.toml` and granted by the host: [`kv`] needs `[permissions] kv = true`, [`http`]
//! needs the hosts under `[permissions] http`, [`skills`] the skills it calls under
//! `[permissions] skills`, [`secrets`] the names it reads under `[permissions] secrets`, and
//! all need `world = "skill"`. A component
//! imports only what its code calls, so a skill that only logs stays a `tool`.

use std::fmt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

pub mod http;
pub mod kv;
pub mod log;
pub mod secrets;
pub mod skills;

/// The bindings generated from the OmniForge WIT; used by [`skill!`], not meant to be
/// called directly.
#[doc(hidden)]
pub mod bindings {
    wit_bindgen::generate!({
        path: "wit",
        world: "omniforge:skill/skill",
        generate_all,
        pub_export_macro: true,
        export_macro_name: "__export_omniforge_world",
        default_bindings_module: "omniforge_sdk::bindings",
    });
}

use bindings::omniforge::skill::types::{Invocation, SkillError};

/// Exports `handler` as the skill. `handler` is any function
/// `fn(Context, I) -> Result<O, E>` where `I: serde::de::DeserializeOwned`,
/// `O: serde::Serialize` and `E: Into<Error>` (every `std::error::Error` is).
///
/// Use it once per crate, at the top level.
#[macro_export]
macro_rules! skill {
    ($handler:path) => {
        #[doc(hidden)]
        pub struct __OmniforgeSkill;

        impl $crate::bindings::exports::omniforge::skill::handler::Guest for __OmniforgeSkill {
            fn invoke(
                ctx: $crate::bindings::omniforge::skill::types::Invocation,
                input: ::std::string::String,
            ) -> ::std::result::Result<
                ::std::string::String,
                $crate::bindings::omniforge::skill::types::SkillError,
            > {
                $crate::__private::run(ctx, &input, $handler)
            }
        }

        $crate::bindings::__export_omniforge_world!(__OmniforgeSkill with_types_in $crate::bindings);
    };
}

/// Who is calling and how long the skill has. Filled in by the host for each invocation; use
/// it for logging and to stop early, not for authorization (the host has already decided what
/// the skill may do).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Context {
    /// Id of the tenant the invocation runs for (`ten_…`, stable; not its slug).
    pub tenant: String,
    /// The skill's full name, `namespace/name`.
    pub skill: String,
    /// The exact version running.
    pub version: String,
    /// The request id, for matching the skill's logs with the caller's request.
    pub request_id: String,
    /// When the host ends the invocation, in milliseconds since the Unix epoch.
    pub deadline_unix_ms: u64,
}

impl Context {
    /// The durable task this invocation runs for (`tsk_…`), or `None` for a synchronous
    /// call. A task runs at least once — a run lost with its server runs again — so key
    /// side effects outside the platform on it (an idempotency key for the API you call) to
    /// make them happen once. Needs a host with WIT 0.1.2.
    pub fn task_id(&self) -> Option<String> {
        bindings::omniforge::skill::context::task_id()
    }

    /// Which run of the task this is: 1 for the first, 2 after a lost run, …; 1 without a
    /// task.
    pub fn attempt(&self) -> u32 {
        bindings::omniforge::skill::context::attempt()
    }

    /// Time left before the host ends the invocation (zero once past the deadline).
    pub fn remaining(&self) -> Duration {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_millis();
        let left = u128::from(self.deadline_unix_ms).saturating_sub(now);
        Duration::from_millis(u64::try_from(left).unwrap_or(u64::MAX))
    }
}

impl From<Invocation> for Context {
    fn from(ctx: Invocation) -> Self {
        Self {
            tenant: ctx.tenant,
            skill: ctx.skill,
            version: ctx.version,
            request_id: ctx.request_id,
            deadline_unix_ms: ctx.deadline_unix_ms,
        }
    }
}

/// An error the skill returns on purpose; callers see its kind and message.
///
/// Any `std::error::Error` converts into it with `?` (as [`Error::Failed`], or with the
/// matching kind for this SDK's [`kv::Error`] and [`http::Error`]), so a handler can return
/// `Result<O, Error>` and use `?` on everything it calls.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Error {
    /// The input is well-formed JSON but not acceptable to the skill.
    InvalidInput(String),
    /// The skill was refused something it needed (a capability, a host).
    Denied(String),
    /// Something the input referred to does not exist.
    NotFound(String),
    /// A dependency is unavailable; retrying later may succeed.
    Unavailable(String),
    /// Any other failure.
    Failed(String),
}

impl Error {
    /// [`Error::InvalidInput`].
    pub fn invalid_input(message: impl Into<String>) -> Self {
        Self::InvalidInput(message.into())
    }

    /// [`Error::Denied`].
    pub fn denied(message: impl Into<String>) -> Self {
        Self::Denied(message.into())
    }

    /// [`Error::NotFound`].
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::NotFound(message.into())
    }

    /// [`Error::Unavailable`].
    pub fn unavailable(message: impl Into<String>) -> Self {
        Self::Unavailable(message.into())
    }

    /// [`Error::Failed`].
    pub fn failed(message: impl Into<String>) -> Self {
        Self::Failed(message.into())
    }

    /// The kind as the API reports it (`invalid-input`, `denied`, …).
    pub fn kind(&self) -> &'static str {
        match self {
            Self::InvalidInput(_) => "invalid-input",
            Self::Denied(_) => "denied",
            Self::NotFound(_) => "not-found",
            Self::Unavailable(_) => "unavailable",
            Self::Failed(_) => "failed",
        }
    }

    /// The message.
    pub fn message(&self) -> &str {
        match self {
            Self::InvalidInput(m)
            | Self::Denied(m)
            | Self::NotFound(m)
            | Self::Unavailable(m)
            | Self::Failed(m) => m,
        }
    }

    /// The host's error as this SDK's (a callee's error, a secret's).
    pub(crate) fn from_wit(error: SkillError) -> Self {
        match error {
            SkillError::InvalidInput(m) => Self::InvalidInput(m),
            SkillError::Denied(m) => Self::Denied(m),
            SkillError::NotFound(m) => Self::NotFound(m),
            SkillError::Unavailable(m) => Self::Unavailable(m),
            SkillError::Failed(m) => Self::Failed(m),
        }
    }

    fn into_wit(self) -> SkillError {
        match self {
            Self::InvalidInput(m) => SkillError::InvalidInput(m),
            Self::Denied(m) => SkillError::Denied(m),
            Self::NotFound(m) => SkillError::NotFound(m),
            Self::Unavailable(m) => SkillError::Unavailable(m),
            Self::Failed(m) => SkillError::Failed(m),
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.kind(), self.message())
    }
}

// `Error` deliberately does not implement `std::error::Error`: that is what lets every error
// type convert into it (as anyhow's error does) without overlapping `From<T> for T`.
impl<E: std::error::Error + 'static> From<E> for Error {
    fn from(error: E) -> Self {
        let any: &dyn std::any::Any = &error;
        if let Some(e) = any.downcast_ref::<kv::Error>() {
            return e.clone().into_skill_error();
        }
        if let Some(e) = any.downcast_ref::<http::Error>() {
            return e.clone().into_skill_error();
        }
        Self::Failed(error.to_string())
    }
}

/// What [`skill!`] expands to call; not part of the API.
#[doc(hidden)]
pub mod __private {
    use super::*;

    /// Parses the input, runs the handler, writes the output.
    pub fn run<I, O, E, F>(ctx: Invocation, input: &str, handler: F) -> Result<String, SkillError>
    where
        I: serde::de::DeserializeOwned,
        O: serde::Serialize,
        E: Into<Error>,
        F: FnOnce(Context, I) -> Result<O, E>,
    {
        let input: I = serde_json::from_str(input).map_err(|e| {
            SkillError::InvalidInput(format!("the input does not fit this skill: {e}"))
        })?;
        let output = handler(Context::from(ctx), input).map_err(|e| e.into().into_wit())?;
        serde_json::to_string(&output).map_err(|e| {
            SkillError::Failed(format!("the output is not representable as JSON: {e}"))
        })
    }
}
