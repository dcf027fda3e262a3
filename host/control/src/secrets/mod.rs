//! Tenant secrets: where their values live, behind one trait ([`SecretProvider`]), and the
//! service ([`Secrets`]) that the `/api/v1/secrets` routes and the runtime's `secrets`
//! capability both go through.
//!
//! Providers:
//! - [`DbSecrets`] (the default): values sealed in the database under the server's
//!   key-encryption [`KeyRing`], set and deleted through the API, re-sealed by [`rotate`];
//! - [`EnvSecrets`]: environment variables, read once at start;
//! - [`FileSecrets`]: one file per secret in a directory per tenant (Kubernetes Secrets
//!   mounted as volumes);
//! - [`AwsSecrets`]: AWS Secrets Manager over its HTTP API.
//!
//! The last three are read-only here: their values are managed where they live, by the
//! operator's own tools, and the API answers that it cannot set them.
//!
//! A value is a [`SecretValue`] from the moment it leaves its provider: its `Debug` shows
//! nothing and its memory is wiped when it is dropped. No error of this module holds a value.

mod aws;
mod database;
mod env;
mod files;
pub mod keyring;

use std::sync::Arc;

use async_trait::async_trait;
use omniforge_runtime::capabilities::{SecretSource, SecretSourceError, SecretValue};
use omniforge_store::{AuditContext, SecretName, SecretRecord, StoreError, TenantId};
use serde::Serialize;
use thiserror::Error;

pub use aws::{AwsOptions, AwsSecrets};
pub use database::{DbSecrets, Rotation, rotate};
pub use env::EnvSecrets;
pub use files::FileSecrets;
pub use keyring::{InvalidKey, Kek, KeyRing};

/// Largest secret value, in bytes: credentials, certificates and small JSON documents fit.
pub const MAX_VALUE_BYTES: usize = 64 * 1024;

/// Which provider holds a server's secrets.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, strum::Display, strum::EnumString, serde::Deserialize,
)]
#[strum(serialize_all = "lowercase")]
#[serde(rename_all = "lowercase")]
pub enum ProviderKind {
    /// Sealed in the server's database.
    Db,
    /// Environment variables.
    Env,
    /// Files in a directory per tenant.
    Files,
    /// AWS Secrets Manager.
    Aws,
}

/// A secret as listings show it: its name, and what its provider knows about it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SecretInfo {
    /// The name.
    pub name: SecretName,
    /// The number of times it was set (the database provider only).
    pub version: Option<i64>,
    /// When it was first set, Unix ms, when the provider knows.
    pub created_at_ms: Option<i64>,
    /// When its value last changed, Unix ms, when the provider knows.
    pub updated_at_ms: Option<i64>,
    /// Who set it (the database provider only).
    pub updated_by: Option<String>,
}

impl From<SecretRecord> for SecretInfo {
    fn from(record: SecretRecord) -> Self {
        Self {
            name: record.name,
            version: Some(record.version),
            created_at_ms: Some(record.created_at_ms),
            updated_at_ms: Some(record.updated_at_ms),
            updated_by: Some(record.updated_by),
        }
    }
}

/// Why a secrets operation failed. Messages name secrets and keys, never values.
#[derive(Debug, Error)]
pub enum SecretsError {
    /// The database provider has no key-encryption key.
    #[error(
        "secrets are not configured on this server: give it a key-encryption key \
         (OMNIFORGE_SECRETS_KEY or OMNIFORGE_SECRETS_KEY_FILE)"
    )]
    NotConfigured,
    /// The provider's values are managed outside OmniForge.
    #[error("this server reads secrets from the {0} provider; set them there, not through the API")]
    ReadOnly(ProviderKind),
    /// The value is larger than [`MAX_VALUE_BYTES`].
    #[error("the value is {0} bytes; a secret holds at most 65536")]
    TooLarge(usize),
    /// The provider failed or a stored value does not open; retrying may succeed, or the
    /// operator must act (the message says which).
    #[error("{0}")]
    Unavailable(String),
    /// The database failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Where a server's secrets live. Implementations keep tenants apart: `tenant`'s call never
/// answers another tenant's value.
#[async_trait]
pub trait SecretProvider: Send + Sync + 'static {
    /// Which provider this is.
    fn kind(&self) -> ProviderKind;

    /// `tenant`'s value of `name`, or `None` when it is not set.
    async fn get(
        &self,
        tenant: &TenantId,
        name: &SecretName,
    ) -> Result<Option<SecretValue>, SecretsError>;

    /// Up to `limit` of `tenant`'s secrets by name, after `after`.
    async fn list(
        &self,
        tenant: &TenantId,
        after: Option<&SecretName>,
        limit: u32,
    ) -> Result<Vec<SecretInfo>, SecretsError>;

    /// Sets `tenant`'s `name` to `value`; answers its listing and whether it was created.
    async fn put(
        &self,
        _tenant: &TenantId,
        _audit: &AuditContext,
        _name: &SecretName,
        _value: &SecretValue,
    ) -> Result<(SecretInfo, bool), SecretsError> {
        Err(SecretsError::ReadOnly(self.kind()))
    }

    /// Deletes `tenant`'s `name`; false if it was not set.
    async fn delete(
        &self,
        _tenant: &TenantId,
        _audit: &AuditContext,
        _name: &SecretName,
    ) -> Result<bool, SecretsError> {
        Err(SecretsError::ReadOnly(self.kind()))
    }
}

/// The server's secrets: its provider, with the rules every caller shares (the value's size).
#[derive(Clone)]
pub struct Secrets {
    provider: Arc<dyn SecretProvider>,
}

impl Secrets {
    /// Secrets kept by `provider`.
    pub fn new(provider: Arc<dyn SecretProvider>) -> Self {
        Self { provider }
    }

    /// Which provider holds them.
    pub fn kind(&self) -> ProviderKind {
        self.provider.kind()
    }

    /// `tenant`'s value of `name`.
    pub async fn get(
        &self,
        tenant: &TenantId,
        name: &SecretName,
    ) -> Result<Option<SecretValue>, SecretsError> {
        self.provider.get(tenant, name).await
    }

    /// A page of `tenant`'s secrets.
    pub async fn list(
        &self,
        tenant: &TenantId,
        after: Option<&SecretName>,
        limit: u32,
    ) -> Result<Vec<SecretInfo>, SecretsError> {
        self.provider.list(tenant, after, limit).await
    }

    /// Sets `tenant`'s `name` to `value`.
    pub async fn put(
        &self,
        tenant: &TenantId,
        audit: &AuditContext,
        name: &SecretName,
        value: &SecretValue,
    ) -> Result<(SecretInfo, bool), SecretsError> {
        let len = value.expose().len();
        if len > MAX_VALUE_BYTES {
            return Err(SecretsError::TooLarge(len));
        }
        self.provider.put(tenant, audit, name, value).await
    }

    /// Deletes `tenant`'s `name`.
    pub async fn delete(
        &self,
        tenant: &TenantId,
        audit: &AuditContext,
        name: &SecretName,
    ) -> Result<bool, SecretsError> {
        self.provider.delete(tenant, audit, name).await
    }
}

#[async_trait]
impl SecretSource for Secrets {
    async fn get(
        &self,
        tenant: &TenantId,
        name: &str,
    ) -> Result<Option<SecretValue>, SecretSourceError> {
        // The runtime asks only for names a manifest declared, which are valid names.
        let Ok(name) = name.parse::<SecretName>() else {
            return Ok(None);
        };
        Secrets::get(self, tenant, &name).await.map_err(|error| {
            tracing::warn!(tenant = %tenant, secret = %name, "reading a secret failed: {error}");
            SecretSourceError::Unavailable(match error {
                SecretsError::NotConfigured => "secrets are not configured on this server".into(),
                _ => "the secret store failed; try again".into(),
            })
        })
    }
}
