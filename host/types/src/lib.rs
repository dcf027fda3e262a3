//! Vocabulary shared by the OmniForge runtime, registry and clients, so each rule is written
//! once: skill names, ids, HTTP host patterns, SHA-256 digests, permission kinds.
//!
//! ```
//! use omniforge_types::{HostPattern, SkillName};
//!
//! let name: SkillName = "acme/summarize".parse().unwrap();
//! assert_eq!(name.namespace(), "acme");
//! let pattern: HostPattern = "*.example.com".parse().unwrap();
//! assert!(pattern.matches("https", "api.example.com", 443));
//! ```

mod digest;
mod hosts;
mod ids;
mod name;
mod permission;

pub use digest::{InvalidDigest, Sha256Digest};
pub use hosts::{HostPattern, InvalidHostPattern, parse_ip};
pub use ids::{ApiKeyId, TenantId, UserId};
pub use name::{InvalidSkillName, SkillName};
pub use permission::{InvalidPermissionKind, PermissionKind};
