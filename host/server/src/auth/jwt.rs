//! JWT bearer tokens: HS256 with a shared secret, RS256 with a PEM public key or the keys of
//! an identity provider's JWKS document.
//!
//! The accepted algorithm decides the key, never the token: an HS256 token is checked only
//! against the configured HS256 secret, so an RSA public key can never be used as an HMAC
//! secret (algorithm confusion), and `alg: none` does not even parse. `exp`, `iss`, `aud` and
//! `sub` are required; `nbf` is checked when present.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey, Validation, decode, decode_header};
use serde::Deserialize;
use serde_json::Value;

use crate::config::JwtConfig;

/// What a verified token says.
#[derive(Debug, Clone)]
pub struct VerifiedToken {
    /// `sub`: a user id or email.
    pub subject: String,
    /// The tenant claim: a tenant id or slug.
    pub tenant: String,
    /// `scope`, space-separated, when present.
    pub scope: Option<String>,
}

/// Verifies bearer tokens as configured.
pub struct JwtVerifier {
    hs256_rules: Validation,
    rs256_rules: Validation,
    tenant_claim: String,
    hs256: Option<DecodingKey>,
    rs256: Option<DecodingKey>,
    jwks: Option<Jwks>,
}

/// An identity provider's keys, fetched on demand and cached.
struct Jwks {
    url: String,
    client: reqwest::Client,
    state: tokio::sync::Mutex<JwksState>,
}

#[derive(Default)]
struct JwksState {
    keys: HashMap<String, DecodingKey>,
    fetched_at: Option<Instant>,
}

/// Keys are refetched at most this often, even when a token names an unknown `kid`.
const JWKS_REFETCH: Duration = Duration::from_secs(30);
/// Keys are trusted this long before a refetch.
const JWKS_TTL: Duration = Duration::from_secs(600);

#[derive(Deserialize)]
struct Claims {
    sub: String,
    #[serde(flatten)]
    rest: HashMap<String, Value>,
}

impl JwtVerifier {
    /// Builds a verifier from validated configuration.
    pub fn new(config: &JwtConfig) -> Result<Self, String> {
        let hs256 = config
            .hs256_secret
            .as_ref()
            .map(|s| DecodingKey::from_secret(s.expose().as_bytes()));
        let rs256 = match &config.rs256_public_key_file {
            None => None,
            Some(path) => {
                let pem = std::fs::read(path)
                    .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
                Some(
                    DecodingKey::from_rsa_pem(&pem)
                        .map_err(|e| format!("{} is not an RSA public key: {e}", path.display()))?,
                )
            }
        };
        let jwks = match &config.jwks_url {
            None => None,
            Some(url) => Some(Jwks {
                url: url.clone(),
                client: reqwest::Client::builder()
                    .timeout(Duration::from_secs(10))
                    .build()
                    .map_err(|e| format!("cannot build the JWKS client: {e}"))?,
                state: tokio::sync::Mutex::new(JwksState::default()),
            }),
        };
        let rules = |algorithm| {
            let mut rules = Validation::new(algorithm);
            rules.set_issuer(&[&config.issuer]);
            rules.set_audience(&[&config.audience]);
            rules.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
            rules.validate_nbf = true;
            rules.leeway = config.leeway_secs;
            rules
        };
        Ok(Self {
            hs256_rules: rules(Algorithm::HS256),
            rs256_rules: rules(Algorithm::RS256),
            tenant_claim: config.tenant_claim.clone(),
            hs256,
            rs256,
            jwks,
        })
    }

    /// Verifies `token`; the error says which check failed (never echoing the token).
    pub async fn verify(&self, token: &str) -> Result<VerifiedToken, String> {
        let header = decode_header(token).map_err(|_| "malformed token".to_owned())?;
        let (key, rules) = match header.alg {
            Algorithm::HS256 => (
                self.hs256
                    .clone()
                    .ok_or("HS256 tokens are not accepted here")?,
                &self.hs256_rules,
            ),
            Algorithm::RS256 => (
                self.rs256_key(header.kid.as_deref()).await?,
                &self.rs256_rules,
            ),
            other => return Err(format!("{other:?} tokens are not accepted here")),
        };
        let data = decode::<Claims>(token, &key, rules).map_err(|e| {
            use jsonwebtoken::errors::ErrorKind::*;
            match e.kind() {
                ExpiredSignature => "token expired".to_owned(),
                ImmatureSignature => "token not valid yet (nbf)".to_owned(),
                InvalidIssuer => "wrong issuer".to_owned(),
                InvalidAudience => "wrong audience".to_owned(),
                InvalidSignature => "bad signature".to_owned(),
                MissingRequiredClaim(claim) => format!("missing claim {claim}"),
                _ => "invalid token".to_owned(),
            }
        })?;
        let tenant = data
            .claims
            .rest
            .get(&self.tenant_claim)
            .and_then(Value::as_str)
            .ok_or_else(|| format!("missing claim {}", self.tenant_claim))?
            .to_owned();
        let scope = data
            .claims
            .rest
            .get("scope")
            .and_then(Value::as_str)
            .map(str::to_owned);
        Ok(VerifiedToken {
            subject: data.claims.sub,
            tenant,
            scope,
        })
    }

    async fn rs256_key(&self, kid: Option<&str>) -> Result<DecodingKey, String> {
        if let (Some(jwks), Some(kid)) = (&self.jwks, kid) {
            return jwks.key(kid).await;
        }
        self.rs256
            .clone()
            .ok_or_else(|| "RS256 tokens need a kid naming a key of the JWKS".to_owned())
    }
}

impl Jwks {
    async fn key(&self, kid: &str) -> Result<DecodingKey, String> {
        let mut state = self.state.lock().await;
        let fresh = state.fetched_at.is_some_and(|t| t.elapsed() < JWKS_TTL);
        if fresh && let Some(key) = state.keys.get(kid) {
            return Ok(key.clone());
        }
        let may_refetch = state.fetched_at.is_none_or(|t| t.elapsed() >= JWKS_REFETCH);
        if may_refetch {
            match self.fetch().await {
                Ok(keys) => {
                    state.keys = keys;
                    state.fetched_at = Some(Instant::now());
                }
                Err(e) => tracing::warn!(error = %e, url = %self.url, "fetching the JWKS failed"),
            }
        }
        state
            .keys
            .get(kid)
            .cloned()
            .ok_or_else(|| "the token's kid is not among the identity provider's keys".into())
    }

    async fn fetch(&self) -> Result<HashMap<String, DecodingKey>, String> {
        let set: JwkSet = self
            .client
            .get(&self.url)
            .send()
            .await
            .and_then(reqwest::Response::error_for_status)
            .map_err(|e| e.to_string())?
            .json()
            .await
            .map_err(|e| e.to_string())?;
        let mut keys = HashMap::new();
        for jwk in &set.keys {
            // Only RSA keys: an `oct` key in a JWKS would otherwise become an HMAC secret.
            let is_rsa = matches!(
                jwk.algorithm,
                jsonwebtoken::jwk::AlgorithmParameters::RSA(_)
            );
            if let (true, Some(kid)) = (is_rsa, &jwk.common.key_id)
                && let Ok(key) = DecodingKey::from_jwk(jwk)
            {
                keys.insert(kid.clone(), key);
            }
        }
        Ok(keys)
    }
}
