//! The tenant's secrets (since WIT 0.1.3): API keys and passwords the tenant's owners and
//! admins set (`PUT /api/v1/secrets/{name}`), read by name. Needs `world = "skill"` and the
//! names under `[permissions] secrets` in `omniforge.toml`:
//!
//! ```toml
//! [permissions]
//! secrets = ["weather-api-key"]
//! ```
//!
//! A name the manifest does not declare is `denied`; one the tenant has not set is
//! `not-found`; a store that cannot be read now is `unavailable`. Returning the error with
//! `?` passes it on to the caller, naming the secret, never a value. Keep a value only as
//! long as the call that needs it, and never log it or put it in the output.
//!
//! ```no_run
//! use omniforge_sdk::{Error, secrets};
//!
//! fn authorization() -> Result<String, Error> {
//!     Ok(format!("Bearer {}", secrets::get("weather-api-key")?))
//! }
//! ```

use crate::Error;
use crate::bindings::omniforge::skill::secrets as wit;

/// The value of the tenant's secret `name`.
pub fn get(name: &str) -> Result<String, Error> {
    wit::get(name).map_err(Error::from_wit)
}
