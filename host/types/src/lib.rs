//! Vocabulary shared by the OmniForge runtime, registry and clients, so each rule is written
//! once: skill names, ids, HTTP host patterns, SHA-256 digests, permission kinds, secret
//! names.
//!
//! ```
//! use omniforge_types::{HostPattern, SkillName};
//!
//! let name: SkillName = "acme/summarize".parse().unwrap();
//! assert_eq!(name.namespace(), "acme");
//! let pattern: HostPattern = "*.example.com".parse().unwrap();
//! assert!(pattern.matches("https", "api.example.com", 443));
//! ```

/// Serialises a type as its `Display` text and deserialises it through `FromStr`, so its
/// JSON and TOML form is the one its parser checks.
macro_rules! text_serde {
    ($type:ty) => {
        impl serde::Serialize for $type {
            fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.collect_str(self)
            }
        }

        impl<'de> serde::Deserialize<'de> for $type {
            fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                let text = <String as serde::Deserialize>::deserialize(deserializer)?;
                text.parse().map_err(serde::de::Error::custom)
            }
        }
    };
}
pub(crate) use text_serde;

mod digest;
mod hosts;
mod ids;
mod name;
mod permission;
mod secret;

pub use digest::{InvalidDigest, Sha256Digest};
pub use hosts::{HostPattern, InvalidHostPattern, parse_ip};
pub use ids::{AgentId, ApiKeyId, TaskId, TenantId, UserId};
pub use name::{InvalidSkillName, SkillName};
pub use permission::{InvalidPermissionKind, PermissionKind};
pub use secret::{InvalidSecretName, SecretName};
