//! The skill's key-value store: bytes under string keys, kept by the host per tenant and
//! per skill (two skills, or two tenants running the same skill, never see each other's
//! keys). Needs `world = "skill"` and `[permissions] kv = true` in `omniforge.toml`.

use std::fmt;

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::bindings::omniforge::skill::kv::{self as wit, KvError};

/// Why a key-value operation failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Error {
    /// The skill was not granted the store (`[permissions] kv = true`).
    Denied,
    /// The key or value is over the host's size limits; the message names the limit.
    TooLarge(String),
    /// The tenant's storage quota for this skill is used up.
    QuotaExceeded,
    /// [`increment`] found a value that is not an 8-byte counter.
    NotACounter,
    /// The store could not complete the operation; retrying may succeed.
    Unavailable(String),
}

impl Error {
    /// The skill error a handler returns when it passes this one on with `?`.
    pub(crate) fn into_skill_error(self) -> crate::Error {
        match self {
            Self::Denied => crate::Error::Denied(
                "the key-value store is not granted (declare [permissions] kv = true)".into(),
            ),
            Self::Unavailable(m) => crate::Error::Unavailable(format!("key-value store: {m}")),
            other => crate::Error::Failed(format!("key-value store: {other}")),
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Denied => f.write_str("the key-value store is not granted"),
            Self::TooLarge(limit) => write!(f, "too large: {limit}"),
            Self::QuotaExceeded => f.write_str("the storage quota is used up"),
            Self::NotACounter => f.write_str("the value is not a counter"),
            Self::Unavailable(m) => write!(f, "unavailable: {m}"),
        }
    }
}

impl std::error::Error for Error {}

impl From<KvError> for Error {
    fn from(e: KvError) -> Self {
        match e {
            KvError::Denied => Self::Denied,
            KvError::TooLarge(m) => Self::TooLarge(m),
            KvError::QuotaExceeded => Self::QuotaExceeded,
            KvError::NotACounter => Self::NotACounter,
            KvError::Unavailable(m) => Self::Unavailable(m),
        }
    }
}

/// The value under `key`, if any.
pub fn get(key: &str) -> Result<Option<Vec<u8>>, Error> {
    Ok(wit::get(key)?)
}

/// Stores `value` under `key`, replacing any previous value.
pub fn set(key: &str, value: &[u8]) -> Result<(), Error> {
    Ok(wit::set(key, value)?)
}

/// Removes `key`; removing a missing key succeeds.
pub fn delete(key: &str) -> Result<(), Error> {
    Ok(wit::delete(key)?)
}

/// Whether `key` has a value.
pub fn exists(key: &str) -> Result<bool, Error> {
    Ok(wit::exists(key)?)
}

/// Up to `limit` keys starting with `prefix`, in byte order (the host may cap `limit`).
pub fn list_keys(prefix: &str, limit: u32) -> Result<Vec<String>, Error> {
    Ok(wit::list_keys(prefix, limit)?)
}

/// Atomically adds `delta` to the counter under `key` (a missing key counts as 0) and
/// returns the new value. Concurrent invocations never lose an increment.
pub fn increment(key: &str, delta: i64) -> Result<i64, Error> {
    Ok(wit::increment(key, delta)?)
}

/// The value under `key` read as JSON into `T`, if any.
pub fn get_json<T: DeserializeOwned>(key: &str) -> Result<Option<T>, crate::Error> {
    match get(key)? {
        None => Ok(None),
        Some(bytes) => serde_json::from_slice(&bytes).map(Some).map_err(|e| {
            crate::Error::failed(format!(
                "the value under {key:?} is not the JSON expected: {e}"
            ))
        }),
    }
}

/// Stores `value` as JSON under `key`.
pub fn set_json<T: Serialize + ?Sized>(key: &str, value: &T) -> Result<(), crate::Error> {
    let bytes = serde_json::to_vec(value)?;
    Ok(set(key, &bytes)?)
}
