//! JWT bearer tokens: HS256 with a shared secret, RS256 with a PEM public key or the keys of
//! an identity provider's JWKS document.
//!
//! The accepted algorithm decides the key, never the token: an HS256 token is checked only
//! against the configured HS256 secret, so an RSA public key can never be used as an HMAC
//! secret (algorithm confusion), and `alg: none` does not even parse. `exp`, `iss`, `aud` and
//! `sub` are required; `nbf` is checked when present.

use std::collections::HashMap;
use std::sync::Arc;
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
    jwks: Option<Arc<Jwks>>,
}

/// An identity provider's keys, fetched on demand and cached. Known keys are always served
/// from the cache: when they are old, a refresh runs in the background (one at a time) and
/// requests keep verifying with the keys they have, so a slow provider delays nobody whose
/// key is known. Only a token naming a key not yet seen waits, for the one refresh in flight.
struct Jwks {
    url: String,
    client: reqwest::Client,
    ttl: Duration,
    state: std::sync::RwLock<JwksState>,
    /// Held by the one refresh in flight.
    refreshing: Arc<tokio::sync::Mutex<()>>,
}

#[derive(Default)]
struct JwksState {
    keys: HashMap<String, DecodingKey>,
    /// The last successful fetch.
    fetched_at: Option<Instant>,
    /// The last fetch attempt, successful or not.
    attempted_at: Option<Instant>,
}

/// Keys are refetched at most this often, even when a token names an unknown `kid`.
const JWKS_REFETCH: Duration = Duration::from_secs(30);
/// A fetch of the keys waits at most this long for the provider.
const JWKS_TIMEOUT: Duration = Duration::from_secs(10);

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
            Some(url) => Some(Arc::new(Jwks {
                url: url.clone(),
                client: reqwest::Client::builder()
                    .timeout(JWKS_TIMEOUT)
                    .build()
                    .map_err(|e| format!("cannot build the JWKS client: {e}"))?,
                ttl: Duration::from_secs(config.jwks_ttl_secs),
                state: std::sync::RwLock::default(),
                refreshing: Arc::default(),
            })),
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
    /// The cached key `kid`, whether it is old enough to refresh (in the background), and
    /// whether a fetch for a key not yet seen is allowed now (at most every
    /// [`JWKS_REFETCH`], so made-up `kid`s cannot make us hammer the provider).
    fn cached(&self, kid: &str) -> (Option<DecodingKey>, bool, bool) {
        let state = self.state.read().unwrap_or_else(|e| e.into_inner());
        let since_attempt =
            |at: Option<Instant>, wait: Duration| at.is_none_or(|t| t.elapsed() >= wait);
        let stale = state.fetched_at.is_none_or(|t| t.elapsed() >= self.ttl)
            && since_attempt(state.attempted_at, self.ttl.min(JWKS_REFETCH));
        let may_fetch_unknown = since_attempt(state.attempted_at, JWKS_REFETCH);
        (state.keys.get(kid).cloned(), stale, may_fetch_unknown)
    }

    async fn key(self: &Arc<Self>, kid: &str) -> Result<DecodingKey, String> {
        let (key, stale, may_fetch_unknown) = self.cached(kid);
        if let Some(key) = key {
            if stale {
                self.refresh_in_background();
            }
            return Ok(key);
        }
        if may_fetch_unknown {
            // An unknown kid: wait for a refresh (the one in flight, or ours).
            let _turn = self.refreshing.lock().await;
            if self.cached(kid).2 {
                self.refresh().await;
            }
        }
        self.cached(kid)
            .0
            .ok_or_else(|| "the token's kid is not among the identity provider's keys".into())
    }

    /// Starts a refresh unless one is running.
    fn refresh_in_background(self: &Arc<Self>) {
        let Ok(turn) = Arc::clone(&self.refreshing).try_lock_owned() else {
            return;
        };
        let jwks = Arc::clone(self);
        tokio::spawn(async move {
            let _turn = turn;
            jwks.refresh().await;
        });
    }

    /// Fetches the keys and replaces the cached ones (kept when the fetch fails). The
    /// caller holds `refreshing`.
    async fn refresh(&self) {
        self.state
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .attempted_at = Some(Instant::now());
        match self.fetch().await {
            Ok(keys) => {
                let mut state = self.state.write().unwrap_or_else(|e| e.into_inner());
                state.keys = keys;
                state.fetched_at = Some(Instant::now());
            }
            Err(e) => tracing::warn!(error = %e, url = %self.url, "fetching the JWKS failed"),
        }
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
