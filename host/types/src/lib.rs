//! Vocabulary shared by the OmniForge runtime, registry and clients, so each rule is written
//! once.
//!
//! ```
//! use omniforge_types::{HostPattern, SkillName};
//!
//! let name: SkillName = "acme/summarize".parse().unwrap();
//! assert_eq!(name.namespace(), "acme");
//! let pattern: HostPattern = "*.example.com".parse().unwrap();
//! assert!(pattern.matches("https", "api.example.com", 443));
//! ```

mod hosts;
mod ids;
mod name;

pub use hosts::{HostPattern, InvalidHostPattern, parse_ip};
pub use ids::{ApiKeyId, TenantId, UserId};
pub use name::{InvalidSkillName, SkillName};
