//! The authenticated caller a handler acts for, and how it is recorded in the audit log.

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use omniforge_store::{ApiKeyId, AuditContext, TenantId, UserId};

use crate::auth::rbac::{Permission, PermissionSet};
use crate::error::ApiError;

/// How a principal proved who it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Credential {
    /// An API key.
    ApiKey {
        /// The key.
        id: ApiKeyId,
        /// The user who minted it for the principal's user, when that was someone else.
        minted_by: Option<UserId>,
    },
    /// A JWT bearer token.
    Token,
}

/// An authenticated caller.
#[derive(Debug, Clone)]
pub struct Principal {
    /// The tenant it acts in: the scope of every tenant-owned query it makes.
    pub tenant: TenantId,
    /// The user it acts as.
    pub user: UserId,
    /// What it may do: its user's roles' permissions within the credential's scopes. Every
    /// authorization decision reads this, never the user's roles.
    pub permissions: PermissionSet,
    /// Whether the credential carries everything its user's roles give (a `*` key, a token
    /// without a scope claim), now and as the roles change.
    pub unscoped: bool,
    /// How it authenticated.
    pub credential: Credential,
}

impl Principal {
    /// Whether it holds `permission`.
    pub fn can(&self, permission: Permission) -> bool {
        self.permissions.contains(permission)
    }

    /// The actor recorded in audit events: the user, the credential, and for a key minted by
    /// another user, who minted it.
    pub fn actor(&self) -> String {
        match &self.credential {
            Credential::ApiKey {
                id,
                minted_by: None,
            } => format!("user:{} key:{id}", self.user),
            Credential::ApiKey {
                id,
                minted_by: Some(creator),
            } => format!("user:{} key:{id} minted-by:user:{creator}", self.user),
            Credential::Token => format!("user:{} token", self.user),
        }
    }

    /// The audit context for a change made in request `request_id`.
    pub fn audit(&self, request_id: &str) -> AuditContext {
        AuditContext {
            actor: self.actor(),
            actor_tenant: Some(self.tenant.clone()),
            request_id: request_id.to_owned(),
        }
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Principal {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        // Set by the route's access guard. A handler asking for a principal on a route
        // without a guard fails closed.
        parts.extensions.get::<Principal>().cloned().ok_or_else(|| {
            ApiError::internal("a handler needs a principal its route does not require")
        })
    }
}
