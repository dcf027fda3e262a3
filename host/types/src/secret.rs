//! Names of tenant secrets.

use std::fmt;
use std::str::FromStr;

use thiserror::Error;

/// Longest secret name, in characters.
const MAX_LEN: usize = 64;

/// The name of a tenant secret, as a manifest's `[permissions] secrets` and
/// `/api/v1/secrets/{name}` write it: 1–64 ASCII letters, digits, `_`, `-` and `.`, starting
/// with a letter or digit. Exactly the characters a Kubernetes Secret's keys allow, so a
/// mounted Secret holds one file per name; never `.` or `..`, so a name is never a path step.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SecretName(String);

/// A string that is not a valid [`SecretName`].
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error(
    "invalid secret name {name:?}: 1-64 ASCII letters, digits, '_', '-' and '.', starting with a letter or digit"
)]
pub struct InvalidSecretName {
    name: String,
}

impl SecretName {
    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for SecretName {
    type Err = InvalidSecretName;

    fn from_str(name: &str) -> Result<Self, Self::Err> {
        let valid = name.len() <= MAX_LEN
            && name.starts_with(|c: char| c.is_ascii_alphanumeric())
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'));
        if valid {
            Ok(Self(name.to_owned()))
        } else {
            Err(InvalidSecretName {
                name: name.chars().take(MAX_LEN + 8).collect(),
            })
        }
    }
}

impl fmt::Display for SecretName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for SecretName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.0, f)
    }
}

impl AsRef<str> for SecretName {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

crate::text_serde!(SecretName);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_kubernetes_secret_keys_that_are_not_path_steps() {
        for good in [
            "api-token",
            "GITHUB_TOKEN",
            "db.password",
            "a",
            &"x".repeat(64),
        ] {
            assert_eq!(good.parse::<SecretName>().unwrap().as_str(), good);
        }
        for bad in [
            "",
            ".",
            "..",
            ".hidden",
            "-x",
            "_x",
            "a/b",
            "a b",
            "ü",
            "a\0",
            &"x".repeat(65),
        ] {
            assert!(bad.parse::<SecretName>().is_err(), "{bad:?}");
        }
    }
}
