//! Kinds of permission a manifest can ask for: the words skill listings show and the
//! marketplace filters by.

use std::fmt;
use std::str::FromStr;

use thiserror::Error;

/// One kind of `[permissions]` entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum PermissionKind {
    /// Outbound HTTP.
    Http,
    /// The key-value store.
    Kv,
    /// Tenant secrets.
    Secrets,
    /// The host's LLM gateway.
    Llm,
    /// Calling other skills.
    Skills,
}

/// A word that is not a [`PermissionKind`].
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("not a permission kind (one of http, kv, secrets, llm, skills)")]
pub struct InvalidPermissionKind;

impl PermissionKind {
    /// Every kind, in the order listings show them.
    pub const ALL: [PermissionKind; 5] =
        [Self::Http, Self::Kv, Self::Secrets, Self::Llm, Self::Skills];

    /// The kind's word.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Http => "http",
            Self::Kv => "kv",
            Self::Secrets => "secrets",
            Self::Llm => "llm",
            Self::Skills => "skills",
        }
    }
}

impl fmt::Display for PermissionKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for PermissionKind {
    type Err = InvalidPermissionKind;

    fn from_str(word: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|kind| kind.as_str() == word)
            .ok_or(InvalidPermissionKind)
    }
}

crate::text_serde!(PermissionKind);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_read_back_as_themselves() {
        for kind in PermissionKind::ALL {
            assert_eq!(kind.as_str().parse::<PermissionKind>(), Ok(kind));
            assert_eq!(
                serde_json::from_value::<PermissionKind>(serde_json::to_value(kind).unwrap())
                    .unwrap(),
                kind
            );
        }
        assert!("HTTP".parse::<PermissionKind>().is_err());
        assert!("secret".parse::<PermissionKind>().is_err());
    }
}
