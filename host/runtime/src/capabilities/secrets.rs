//! The `secrets` capability (`omniforge:skill/secrets`, since WIT 0.1.3): a skill reads the
//! tenant's secrets that its manifest names, from the platform's [`SecretSource`].
//!
//! The runtime decides only what the manifest decides: a name the manifest does not declare
//! is `denied` before the source is asked, so a skill can never probe for other names. The
//! source decides whose value a name is: it is always asked for the invocation's own tenant.
//!
//! Every value handed to the guest is remembered for the invocation (`Redactions`), and the
//! host masks it in what it keeps of the guest's words: log lines, stderr (and the panic
//! message taken from it) and the message of a skill error. A careless `log(token)` does not
//! put a credential into the operator's logs. It is a safety net, not a boundary: a skill
//! that means to leak a value can encode it first.

use std::borrow::Cow;
use std::collections::BTreeSet;
use std::fmt;
use std::sync::{Arc, Mutex};

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

/// What replaces a secret's value in the guest's words the host keeps.
const MASK: &str = "[secret]";

/// Values shorter than this are not masked: masking every `1` or `on` in a log line would
/// garble it and hide nothing worth hiding.
const MIN_MASKED_LEN: usize = 4;

/// The secret values one invocation was handed, to be masked wherever the host keeps the
/// guest's words. Shared by the invocation's capabilities and its stderr; wiped when dropped.
#[derive(Clone, Default)]
pub(crate) struct Redactions(Arc<Mutex<Vec<Zeroizing<String>>>>);

impl Redactions {
    fn add(&self, value: &str) {
        if value.len() < MIN_MASKED_LEN {
            return;
        }
        let mut values = self.0.lock().unwrap_or_else(|e| e.into_inner());
        if !values.iter().any(|v| v.as_str() == value) {
            values.push(Zeroizing::new(value.to_owned()));
            // Longest first, so a value that contains another is masked whole.
            values.sort_by_key(|v| std::cmp::Reverse(v.len()));
        }
    }

    /// `text` with every value this invocation read replaced by `[secret]`.
    pub(crate) fn mask<'a>(&self, text: &'a str) -> Cow<'a, str> {
        let values = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let mut text = Cow::Borrowed(text);
        for value in values.iter() {
            if text.contains(value.as_str()) {
                text = Cow::Owned(text.replace(value.as_str(), MASK));
            }
        }
        text
    }
}

/// Per-invocation state of the `secrets` capability.
pub(crate) struct SecretsState {
    source: Option<Arc<dyn SecretSource>>,
    tenant: TenantId,
    declared: BTreeSet<String>,
    handed: Redactions,
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
            handed: setup.redactions.clone(),
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
            Ok(Some(value)) => {
                state.handed.add(value.expose());
                Ok(value.expose().to_owned())
            }
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
    fn values_handed_out_are_masked_longest_first_and_short_ones_left_alone() {
        let handed = Redactions::default();
        assert_eq!(handed.mask("nothing yet"), "nothing yet");
        handed.add("tok");
        handed.add("sk-live-123");
        handed.add("sk-live-123-extended");
        assert_eq!(
            handed.mask("a sk-live-123-extended and sk-live-123, tok"),
            "a [secret] and [secret], tok"
        );
        assert!(matches!(handed.mask("clean"), Cow::Borrowed(_)));
    }

    #[test]
    fn a_value_never_shows_in_debug_output() {
        let value = SecretValue::new("hunter2".into());
        assert_eq!(format!("{value:?}"), "SecretValue(<redacted>)");
        assert_eq!(value.expose(), "hunter2");
    }
}
