//! API keys: `ofk_<prefix>_<secret>`. The prefix (12 hex digits) is public and indexed; the
//! secret (32 random bytes, base64url) is shown once and stored only as an argon2id hash.

use std::fmt;

use argon2::Argon2;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use base64::Engine;

/// Every key starts with this, so leaked keys are easy to recognise and scan for.
pub const KEY_PREFIX: &str = "ofk_";

/// A freshly minted key: the full text (shown once) and what is stored.
pub struct MintedKey {
    /// `ofk_<prefix>_<secret>`; never stored, never logged.
    pub full: String,
    /// The public prefix.
    pub prefix: String,
    /// The argon2id PHC string of the secret.
    pub secret_hash: String,
}

impl fmt::Debug for MintedKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MintedKey")
            .field("prefix", &self.prefix)
            .finish_non_exhaustive()
    }
}

/// Makes a new random key.
pub fn mint() -> Result<MintedKey, String> {
    let mut prefix = [0u8; 6];
    let mut secret = [0u8; 32];
    getrandom::fill(&mut prefix).map_err(|e| format!("no randomness: {e}"))?;
    getrandom::fill(&mut secret).map_err(|e| format!("no randomness: {e}"))?;
    let prefix = hex::encode(prefix);
    let secret = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(secret);
    let secret_hash = hash_secret(&secret)?;
    Ok(MintedKey {
        full: format!("{KEY_PREFIX}{prefix}_{secret}"),
        prefix,
        secret_hash,
    })
}

/// A presented key split into its parts; `None` when it does not have the key's shape.
pub fn parse(token: &str) -> Option<(&str, &str)> {
    let rest = token.strip_prefix(KEY_PREFIX)?;
    let (prefix, secret) = rest.split_once('_')?;
    let prefix_ok = prefix.len() == 12 && prefix.bytes().all(|b| b.is_ascii_hexdigit());
    let secret_ok = secret.len() == 43
        && secret
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    (prefix_ok && secret_ok).then_some((prefix, secret))
}

fn hash_secret(secret: &str) -> Result<String, String> {
    let mut salt = [0u8; 16];
    getrandom::fill(&mut salt).map_err(|e| format!("no randomness: {e}"))?;
    let salt = SaltString::encode_b64(&salt).map_err(|e| e.to_string())?;
    Argon2::default()
        .hash_password(secret.as_bytes(), &salt)
        .map(|hash| hash.to_string())
        .map_err(|e| format!("hashing failed: {e}"))
}

/// Whether `secret` matches the stored argon2id hash (constant-time comparison inside).
pub fn verify_secret(secret: &str, stored_hash: &str) -> bool {
    PasswordHash::new(stored_hash).is_ok_and(|hash| {
        Argon2::default()
            .verify_password(secret.as_bytes(), &hash)
            .is_ok()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn minted_keys_parse_and_verify_and_their_debug_hides_the_secret() {
        let key = mint().unwrap();
        let (prefix, secret) = parse(&key.full).unwrap();
        assert_eq!(prefix, key.prefix);
        assert!(key.secret_hash.starts_with("$argon2id$"));
        assert!(verify_secret(secret, &key.secret_hash));
        assert!(!verify_secret("x", &key.secret_hash));
        assert!(!format!("{key:?}").contains(secret));
    }

    #[test]
    fn malformed_keys_do_not_parse() {
        for bad in [
            "",
            "ofk_",
            "ofk_abc_def",
            "xyz_0123456789ab_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
            "ofk_0123456789ag_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
            "ofk_0123456789ab_AAAA",
            "ofk_0123456789ab_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=",
        ] {
            assert!(parse(bad).is_none(), "{bad:?} parsed");
        }
    }
}
