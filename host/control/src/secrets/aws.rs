//! Secrets from AWS Secrets Manager, over its JSON HTTP API signed with SigV4 (`aws-sigv4`,
//! the signer of AWS's own SDK, without the SDK's runtime: two operations do not need it).
//!
//! Tenant `ten_…`'s secret `api-token` is the Secrets Manager secret
//! `<prefix><tenant id>/api-token` (prefix `omniforge/` by default), holding a string. Values
//! are kept for a short time (`cache_ttl`) so a busy skill does not make one AWS call per
//! invocation; a changed value is seen when that time has passed.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime};

use async_trait::async_trait;
use aws_credential_types::Credentials;
use aws_sigv4::http_request::{SignableBody, SignableRequest, SigningSettings, sign};
use aws_sigv4::sign::v4;
use omniforge_runtime::capabilities::SecretValue;
use omniforge_store::{SecretName, TenantId};
use serde::Deserialize;
use serde_json::{Value, json};
use zeroize::Zeroizing;

use super::{ProviderKind, SecretInfo, SecretProvider, SecretsError};

/// Where and how to reach Secrets Manager.
#[derive(Clone)]
pub struct AwsOptions {
    /// The service's URL: `https://secretsmanager.<region>.amazonaws.com`, or a compatible
    /// server's.
    pub endpoint: String,
    /// The region requests are signed for.
    pub region: String,
    /// What every secret's name starts with, before the tenant id.
    pub prefix: String,
    /// The access key id.
    pub access_key_id: String,
    /// The secret access key.
    pub secret_access_key: Zeroizing<String>,
    /// A session token, with temporary credentials.
    pub session_token: Option<Zeroizing<String>>,
    /// How long a value read is reused; zero reads every time.
    pub cache_ttl: Duration,
}

impl std::fmt::Debug for AwsOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AwsOptions")
            .field("endpoint", &self.endpoint)
            .field("region", &self.region)
            .field("prefix", &self.prefix)
            .field("access_key_id", &self.access_key_id)
            .field("cache_ttl", &self.cache_ttl)
            .finish_non_exhaustive()
    }
}

type Cached = (Instant, Option<SecretValue>);

/// Secrets in AWS Secrets Manager.
pub struct AwsSecrets {
    options: AwsOptions,
    http: reqwest::Client,
    cache: Mutex<HashMap<(TenantId, SecretName), Cached>>,
}

/// One entry of `ListSecrets`.
#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Listed {
    name: String,
    created_date: Option<f64>,
    last_changed_date: Option<f64>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct ListPage {
    #[serde(default)]
    secret_list: Vec<Listed>,
    next_token: Option<String>,
}

/// The part of `GetSecretValue`'s answer that is read: the string, wiped when dropped.
#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct SecretString {
    secret_string: Option<Zeroizing<String>>,
}

fn unavailable(what: impl std::fmt::Display) -> SecretsError {
    tracing::warn!("AWS Secrets Manager: {what}");
    SecretsError::Unavailable("AWS Secrets Manager could not be read; try again".into())
}

fn ms(seconds: Option<f64>) -> Option<i64> {
    seconds.map(|s| (s * 1000.0) as i64)
}

impl AwsSecrets {
    /// A provider with `options`.
    pub fn new(options: AwsOptions) -> Result<Self, String> {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .build()
            .map_err(|e| format!("cannot build an HTTP client: {e}"))?;
        Ok(Self {
            options,
            http,
            cache: Mutex::new(HashMap::new()),
        })
    }

    fn secret_id(&self, tenant: &TenantId, name: &SecretName) -> String {
        format!("{}{}/{}", self.options.prefix, tenant, name)
    }

    /// Calls operation `target` with `body`; `Ok(None)` when AWS answers that the resource
    /// does not exist.
    async fn call(&self, target: &str, body: &Value) -> Result<Option<bytes::Bytes>, SecretsError> {
        let body = serde_json::to_vec(body).map_err(unavailable)?;
        let url = format!("{}/", self.options.endpoint.trim_end_matches('/'));
        let target = format!("secretsmanager.{target}");
        let headers = [
            ("content-type", "application/x-amz-json-1.1"),
            ("x-amz-target", target.as_str()),
        ];
        let credentials = Credentials::new(
            &self.options.access_key_id,
            self.options.secret_access_key.as_str(),
            self.options
                .session_token
                .as_ref()
                .map(|t| t.as_str().to_owned()),
            None,
            "omniforge",
        );
        let identity = credentials.into();
        let params = v4::SigningParams::builder()
            .identity(&identity)
            .region(&self.options.region)
            .name("secretsmanager")
            .time(SystemTime::now())
            .settings(SigningSettings::default())
            .build()
            .map_err(unavailable)?
            .into();
        let signable = SignableRequest::new(
            "POST",
            &url,
            headers.iter().copied(),
            SignableBody::Bytes(&body),
        )
        .map_err(unavailable)?;
        let (instructions, _) = sign(signable, &params).map_err(unavailable)?.into_parts();
        let mut request = self.http.post(&url);
        for (name, value) in headers.iter().copied().chain(instructions.headers()) {
            request = request.header(name, value);
        }
        let response = request.body(body).send().await.map_err(unavailable)?;
        let status = response.status();
        let bytes = response.bytes().await.map_err(unavailable)?;
        if status.is_success() {
            return Ok(Some(bytes));
        }
        let kind = serde_json::from_slice::<Value>(&bytes)
            .ok()
            .and_then(|v| v.get("__type")?.as_str().map(str::to_owned))
            .unwrap_or_default();
        if kind.ends_with("ResourceNotFoundException") {
            return Ok(None);
        }
        Err(unavailable(format_args!(
            "{target} answered {status} {kind}"
        )))
    }

    async fn fetch(
        &self,
        tenant: &TenantId,
        name: &SecretName,
    ) -> Result<Option<SecretValue>, SecretsError> {
        let id = self.secret_id(tenant, name);
        let Some(body) = self
            .call("GetSecretValue", &json!({ "SecretId": id }))
            .await?
        else {
            return Ok(None);
        };
        let answer: SecretString = serde_json::from_slice(&body).map_err(unavailable)?;
        match answer.secret_string {
            Some(text) => Ok(Some(SecretValue::new(text.as_str().to_owned()))),
            None => Err(unavailable(format_args!(
                "{id} holds binary data, not a string"
            ))),
        }
    }
}

#[async_trait]
impl SecretProvider for AwsSecrets {
    fn kind(&self) -> ProviderKind {
        ProviderKind::Aws
    }

    async fn get(
        &self,
        tenant: &TenantId,
        name: &SecretName,
    ) -> Result<Option<SecretValue>, SecretsError> {
        let key = (tenant.clone(), name.clone());
        let ttl = self.options.cache_ttl;
        if !ttl.is_zero() {
            let cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
            if let Some((at, value)) = cache.get(&key)
                && at.elapsed() < ttl
            {
                return Ok(value.clone());
            }
        }
        let value = self.fetch(tenant, name).await?;
        if !ttl.is_zero() {
            let mut cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
            cache.retain(|_, (at, _)| at.elapsed() < ttl);
            cache.insert(key, (Instant::now(), value.clone()));
        }
        Ok(value)
    }

    async fn list(
        &self,
        tenant: &TenantId,
        after: Option<&SecretName>,
        limit: u32,
    ) -> Result<Vec<SecretInfo>, SecretsError> {
        let prefix = format!("{}{}/", self.options.prefix, tenant);
        let mut found = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let mut body = json!({
                "Filters": [{ "Key": "name", "Values": [prefix] }],
                "MaxResults": 100,
            });
            if let Some(token) = &token {
                body["NextToken"] = json!(token);
            }
            let Some(page) = self.call("ListSecrets", &body).await? else {
                break;
            };
            let page: ListPage = serde_json::from_slice(&page).map_err(unavailable)?;
            for listed in page.secret_list {
                // The name filter matches prefixes; the check keeps `ten_a/x` and
                // `ten_ab/x` apart whatever a compatible server does.
                let Some(name) = listed
                    .name
                    .strip_prefix(&prefix)
                    .and_then(|n| n.parse::<SecretName>().ok())
                else {
                    continue;
                };
                if after.is_some_and(|after| &name <= after) {
                    continue;
                }
                found.push(SecretInfo {
                    name,
                    version: None,
                    created_at_ms: ms(listed.created_date),
                    updated_at_ms: ms(listed.last_changed_date.or(listed.created_date)),
                    updated_by: None,
                });
            }
            token = page.next_token.filter(|t| !t.is_empty());
            if token.is_none() {
                break;
            }
        }
        found.sort_by(|a, b| a.name.cmp(&b.name));
        found.truncate(limit as usize);
        Ok(found)
    }
}
