//! The `secrets` capability (`omniforge:skill/secrets`, since WIT 0.1.3): a skill reads the
//! tenant's secrets that its manifest names, from the platform's [`SecretSource`].
//!
//! The runtime decides only what the manifest decides: a name the manifest does not declare
//! is `denied` before the source is asked, so a skill can never probe for other names. The
//! source decides whose value a name is: it is always asked for the invocation's own tenant.

use std::collections::BTreeSet;
use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;
use thiserror::Error;
use wasmtime::component::{HasData, Linker};
use zeroize::Zeroizing;

use crate::bindings::omniforge::skill::secrets;
use crate::bindings::omniforge::skill::types::SkillError;
use crate::capabilities::HasCapability;
use crate::invocation::TenantId;
use crate::state::InvocationState;

/// A secret's value. `Debug` never shows it, and its memory is wiped when it is dropped, so
/// a value that passes through the host leaves no copy behind in freed memory.
#[derive(Clone, PartialEq, Eq)]
pub struct SecretValue(Zeroizing<String>);

impl SecretValue {
    /// Wraps a value.
    pub fn new(value: String) -> Self {
        Self(Zeroizing::new(value))
    }

    /// The value itself; call only where it is handed on.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for SecretValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SecretValue(<redacted>)")
    }
}

/// Why a [`SecretSource`] could not answer. The message goes to the skill and the host's
/// logs, so it must never hold a value.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum SecretSourceError {
    /// The store behind the source failed or cannot decrypt; retrying may succeed.
    #[error("secret store unavailable: {0}")]
    Unavailable(String),
}

/// Where the `secrets` capability reads values: the platform's secret provider.
#[async_trait]
pub trait SecretSource: Send + Sync + 'static {
    /// `tenant`'s value of secret `name`, or `None` when the tenant has not set it.
    async fn get(
        &self,
        tenant: &TenantId,
        name: &str,
    ) -> Result<Option<SecretValue>, SecretSourceError>;
}

/// Per-invocation state of the `secrets` capability.
pub(crate) struct SecretsState {
    source: Option<Arc<dyn SecretSource>>,
    tenant: TenantId,
    declared: BTreeSet<String>,
}

impl super::Capability for SecretsState {
    fn add_to_linker(linker: &mut Linker<InvocationState>) -> wasmtime::Result<()> {
        secrets::add_to_linker::<InvocationState, SecretsCapability>(linker, |s| {
            GuestSecrets(HasCapability::<SecretsState>::capability(s))
        })
    }

    fn new(setup: &super::Setup<'_>) -> Self {
        Self {
            source: setup.invoker.secrets.clone(),
            tenant: setup.context.tenant.clone(),
            declared: setup.grants.secrets.clone(),
        }
    }
}

/// Borrowed view of [`SecretsState`] that implements the generated `secrets::Host`.
struct GuestSecrets<'a>(&'a mut SecretsState);

struct SecretsCapability;

impl HasData for SecretsCapability {
    type Data<'a> = GuestSecrets<'a>;
}

impl secrets::Host for GuestSecrets<'_> {
    async fn get(&mut self, name: String) -> Result<String, SkillError> {
        let state = &*self.0;
        if !state.declared.contains(&name) {
            let shown: String = name.chars().take(64).collect();
            return Err(SkillError::Denied(format!(
                "secret {shown:?} is not declared in the skill's [permissions] secrets"
            )));
        }
        let Some(source) = &state.source else {
            return Err(SkillError::Unavailable(
                "this host has no secret store".into(),
            ));
        };
        match source.get(&state.tenant, &name).await {
            Ok(Some(value)) => Ok(value.expose().to_owned()),
            Ok(None) => Err(SkillError::NotFound(format!(
                "the tenant has not set secret {name:?}"
            ))),
            Err(SecretSourceError::Unavailable(message)) => Err(SkillError::Unavailable(format!(
                "secret {name:?}: {message}"
            ))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_value_never_shows_in_debug_output() {
        let value = SecretValue::new("hunter2".into());
        assert_eq!(format!("{value:?}"), "SecretValue(<redacted>)");
        assert_eq!(value.expose(), "hunter2");
    }
}
