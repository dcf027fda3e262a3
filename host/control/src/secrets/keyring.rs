//! The key-encryption keys that seal tenant secrets in the database: the current key seals
//! every new value, and older keys still open the values sealed under them until a rotation
//! re-seals those (`rotate`).
//!
//! A sealed value is `1 ‖ nonce (24 bytes) ‖ ciphertext ‖ tag (16 bytes)`: XChaCha20-Poly1305,
//! whose 192-bit nonces may be drawn at random for every write without counting them. The
//! tenant and the name are the associated data, so a sealed value copied into another row,
//! or another tenant's, does not open. Each key is known by a fingerprint (`key_id`) stored
//! beside the values it sealed, which tells rotation what to re-seal and tells an operator
//! which key a value needs, without the database holding anything that helps to find a key.

use std::fmt;

use base64::Engine as _;
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use omniforge_runtime::capabilities::SecretValue;
use omniforge_store::{SealedSecret, SecretName, TenantId};
use sha2::{Digest, Sha256};
use thiserror::Error;
use zeroize::Zeroizing;

/// The format byte of sealed values written now.
const FORMAT: u8 = 1;
const NONCE: usize = 24;
const TAG: usize = 16;

/// One key-encryption key: 32 random bytes.
pub struct Kek {
    id: String,
    cipher: XChaCha20Poly1305,
}

impl fmt::Debug for Kek {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Kek({})", self.id)
    }
}

/// Why a key's text is not a key.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error(
    "a secrets key is 32 bytes written as base64 (44 characters) or hex (64 digits); \
     make one with `openssl rand -base64 32`"
)]
pub struct InvalidKey;

impl Kek {
    /// A key from its text: 32 bytes as standard or URL-safe base64, or as hex. Surrounding
    /// whitespace (a key file's final newline) is ignored.
    pub fn parse(text: &str) -> Result<Self, InvalidKey> {
        let text = text.trim();
        let bytes = Zeroizing::new(if text.len() == 64 {
            hex::decode(text).map_err(|_| InvalidKey)?
        } else {
            base64::engine::general_purpose::STANDARD
                .decode(text)
                .or_else(|_| base64::engine::general_purpose::URL_SAFE.decode(text))
                .map_err(|_| InvalidKey)?
        });
        let key: &[u8; 32] = bytes.as_slice().try_into().map_err(|_| InvalidKey)?;
        Ok(Self::from_bytes(key))
    }

    /// A key from its bytes.
    pub fn from_bytes(key: &[u8; 32]) -> Self {
        let mut digest = Sha256::new();
        digest.update(b"omniforge secrets key id\0");
        digest.update(key);
        Self {
            id: hex::encode(&digest.finalize()[..8]),
            cipher: XChaCha20Poly1305::new(key.into()),
        }
    }

    /// A fresh random key.
    pub fn generate() -> Result<Self, getrandom::Error> {
        let mut key = Zeroizing::new([0u8; 32]);
        getrandom::fill(key.as_mut())?;
        Ok(Self::from_bytes(&key))
    }

    /// Its fingerprint, the `key_id` stored with what it sealed.
    pub fn id(&self) -> &str {
        &self.id
    }
}

/// Why a stored value did not open.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum OpenError {
    /// Sealed under a key this server was not given.
    #[error(
        "it is sealed under key {0}, which this server does not have \
         (give it as OMNIFORGE_SECRETS_PREVIOUS_KEY until a rotation re-seals it)"
    )]
    UnknownKey(String),
    /// The key is right but the bytes are not what it sealed for this tenant and name.
    #[error("it does not open under key {0}: the stored value was altered or moved")]
    Corrupt(String),
}

/// The keys one server holds: the current one, and older ones it still opens with.
#[derive(Debug)]
pub struct KeyRing {
    current: Kek,
    previous: Vec<Kek>,
}

impl KeyRing {
    /// A ring sealing with `current` and opening with it or any of `previous`.
    pub fn new(current: Kek, previous: Vec<Kek>) -> Self {
        Self { current, previous }
    }

    /// The key new values are sealed with.
    pub fn current(&self) -> &Kek {
        &self.current
    }

    /// Seals `value` as `tenant`'s secret `name`, under the current key.
    pub fn seal(
        &self,
        tenant: &TenantId,
        name: &SecretName,
        value: &str,
    ) -> Result<SealedSecret, getrandom::Error> {
        let mut nonce = [0u8; NONCE];
        getrandom::fill(&mut nonce)?;
        let aad = associated_data(tenant, name);
        let ciphertext = self
            .current
            .cipher
            .encrypt(
                XNonce::from_slice(&nonce),
                Payload {
                    msg: value.as_bytes(),
                    aad: &aad,
                },
            )
            .expect("XChaCha20-Poly1305 seals any message that fits in memory");
        let mut sealed = Vec::with_capacity(1 + NONCE + ciphertext.len());
        sealed.push(FORMAT);
        sealed.extend_from_slice(&nonce);
        sealed.extend_from_slice(&ciphertext);
        Ok(SealedSecret {
            sealed,
            key_id: self.current.id.clone(),
        })
    }

    /// Opens `tenant`'s secret `name` as stored.
    pub fn open(
        &self,
        tenant: &TenantId,
        name: &SecretName,
        stored: &SealedSecret,
    ) -> Result<SecretValue, OpenError> {
        let key = std::iter::once(&self.current)
            .chain(&self.previous)
            .find(|key| key.id == stored.key_id)
            .ok_or_else(|| OpenError::UnknownKey(stored.key_id.clone()))?;
        let corrupt = || OpenError::Corrupt(key.id.clone());
        let bytes = &stored.sealed;
        if bytes.len() < 1 + NONCE + TAG || bytes[0] != FORMAT {
            return Err(corrupt());
        }
        let (nonce, ciphertext) = bytes[1..].split_at(NONCE);
        let plain = Zeroizing::new(
            key.cipher
                .decrypt(
                    XNonce::from_slice(nonce),
                    Payload {
                        msg: ciphertext,
                        aad: &associated_data(tenant, name),
                    },
                )
                .map_err(|_| corrupt())?,
        );
        let text = std::str::from_utf8(&plain).map_err(|_| corrupt())?;
        Ok(SecretValue::new(text.to_owned()))
    }
}

/// What a sealed value is bound to: its tenant and its name.
fn associated_data(tenant: &TenantId, name: &SecretName) -> Vec<u8> {
    let mut aad = b"omniforge secret\0".to_vec();
    aad.extend_from_slice(tenant.as_str().as_bytes());
    aad.push(0);
    aad.extend_from_slice(name.as_str().as_bytes());
    aad
}

#[cfg(test)]
mod tests {
    use super::*;

    fn name(text: &str) -> SecretName {
        text.parse().unwrap()
    }

    #[test]
    fn keys_parse_from_base64_or_hex_and_nothing_else() {
        let hex = "00".repeat(32);
        let b64 = base64::engine::general_purpose::STANDARD.encode([0u8; 32]);
        assert_eq!(
            Kek::parse(&hex).unwrap().id(),
            Kek::parse(&b64).unwrap().id()
        );
        assert_eq!(Kek::parse(&format!("{b64}\n")).unwrap().id().len(), 16);
        for bad in ["", "short", &"00".repeat(31), &"zz".repeat(32)] {
            assert_eq!(Kek::parse(bad).unwrap_err(), InvalidKey, "{bad:?}");
        }
        let longer = base64::engine::general_purpose::STANDARD.encode([0u8; 33]);
        assert!(Kek::parse(&longer).is_err());
    }

    #[test]
    fn a_value_opens_only_as_its_own_tenant_and_name_under_a_key_the_ring_has() {
        let old = Kek::generate().unwrap();
        let old_id = old.id().to_owned();
        let ring = KeyRing::new(old, vec![]);
        let tenant = TenantId::new("ten_a");
        let sealed = ring.seal(&tenant, &name("token"), "hunter2").unwrap();
        assert_eq!(sealed.key_id, old_id);
        assert!(!sealed.sealed.windows(7).any(|w| w == b"hunter2"));
        assert_eq!(
            ring.open(&tenant, &name("token"), &sealed)
                .unwrap()
                .expose(),
            "hunter2"
        );
        // Two seals of one value differ (fresh nonces).
        assert_ne!(
            ring.seal(&tenant, &name("token"), "hunter2").unwrap(),
            sealed
        );
        for (t, n) in [("ten_b", "token"), ("ten_a", "other")] {
            assert_eq!(
                ring.open(&TenantId::new(t), &name(n), &sealed),
                Err(OpenError::Corrupt(old_id.clone()))
            );
        }
        let mut flipped = sealed.clone();
        *flipped.sealed.last_mut().unwrap() ^= 1;
        assert!(matches!(
            ring.open(&tenant, &name("token"), &flipped),
            Err(OpenError::Corrupt(_))
        ));

        let KeyRing { current: old, .. } = ring;
        let rotated = KeyRing::new(Kek::generate().unwrap(), vec![old]);
        assert_eq!(
            rotated
                .open(&tenant, &name("token"), &sealed)
                .unwrap()
                .expose(),
            "hunter2"
        );
        let without_old = KeyRing::new(Kek::generate().unwrap(), vec![]);
        assert_eq!(
            without_old.open(&tenant, &name("token"), &sealed),
            Err(OpenError::UnknownKey(old_id))
        );
    }
}
