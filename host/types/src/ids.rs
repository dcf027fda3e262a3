//! Identifier newtypes, so a tenant id cannot be passed where a user or key id belongs.

use std::fmt;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(Arc<str>);

        impl $name {
            /// Wraps an identifier.
            pub fn new(id: impl Into<Arc<str>>) -> Self {
                Self(id.into())
            }

            /// The identifier as text.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl From<String> for $name {
            fn from(id: String) -> Self {
                Self(id.into())
            }
        }
    };
}

id_type!(
    /// Identifies a tenant: keys every tenant-owned row, concurrency limits and key-value
    /// scopes. Opaque text.
    TenantId
);
id_type!(
    /// Identifies a user within the platform (users belong to one tenant).
    UserId
);
id_type!(
    /// Identifies an API key (its database id, not its secret).
    ApiKeyId
);
id_type!(
    /// Identifies a durable task (`tsk_` + a time-ordered UUID).
    TaskId
);
id_type!(
    /// Identifies an agent (`agt_` + a time-ordered UUID); its name may change, its id not.
    AgentId
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_serialize_as_plain_strings() {
        let id = TenantId::new("ten_1");
        assert_eq!(serde_json::to_string(&id).unwrap(), "\"ten_1\"");
        let back: TenantId = serde_json::from_str("\"ten_1\"").unwrap();
        assert_eq!(back, id);
        assert_eq!(id.to_string(), "ten_1");
    }
}
