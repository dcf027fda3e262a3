//! Package signatures: ed25519 over the SHA-256 digests of `omniforge.toml`, `skill.wasm` and
//! (through one digest of their listing) every other file, carried as `omniforge.sig`.
//!
//! The signed message is `omniforge-package-signature-v1\n<manifest>\n<wasm>\n<others>\n`,
//! so a signature cannot be replayed for any other purpose or set of files. Keys are text
//! files: `omniforge-ed25519-secret-key:<base64 seed>` and
//! `omniforge-ed25519-public-key:<base64 key>`.

use std::collections::BTreeMap;
use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use ed25519_dalek::{Signer, Verifier};
use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::archive::{COMPONENT_FILE, MANIFEST_FILE, SIGNATURE_FILE};
use omniforge_types::Sha256Digest;

const SECRET_PREFIX: &str = "omniforge-ed25519-secret-key:";
const PUBLIC_PREFIX: &str = "omniforge-ed25519-public-key:";
const DOMAIN: &str = "omniforge-package-signature-v1";

/// Why a key or signature was not accepted.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum SignatureError {
    /// The package has no `omniforge.sig`.
    #[error("the package is not signed")]
    Unsigned,
    /// Key text is not in the expected format.
    #[error("not an OmniForge {0} key (expected a line starting {1:?})")]
    MalformedKey(&'static str, &'static str),
    /// The signature does not verify with the given key.
    #[error("the signature does not verify with key {0}")]
    BadSignature(String),
    /// The signature was made by another key.
    #[error("signed by key {signed_by}, not by the given key {given}")]
    OtherKey {
        /// Key id in the signature.
        signed_by: String,
        /// Key id of the given key.
        given: String,
    },
    /// The package's files are not those that were signed.
    #[error("the {0} in the package is not the one that was signed")]
    ContentChanged(&'static str),
    /// The signature file is not valid.
    #[error("malformed signature: {0}")]
    Malformed(String),
}

/// A secret signing key. Its `Debug` output never shows the key.
pub struct SigningKey(ed25519_dalek::SigningKey);

/// A public key that verifies signatures.
#[derive(Clone, PartialEq, Eq)]
pub struct VerifyingKey(ed25519_dalek::VerifyingKey);

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "SigningKey({}, secret redacted)",
            self.verifying_key().key_id()
        )
    }
}

impl fmt::Debug for VerifyingKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "VerifyingKey({})", self.key_id())
    }
}

impl SigningKey {
    /// A new random key from the operating system's generator.
    pub fn generate() -> Self {
        let mut seed = [0u8; 32];
        getrandom::fill(&mut seed).expect("the operating system provides randomness");
        Self(ed25519_dalek::SigningKey::from_bytes(&seed))
    }

    /// The key as one line of text, for a key file.
    pub fn to_text(&self) -> String {
        format!("{SECRET_PREFIX}{}\n", BASE64.encode(self.0.to_bytes()))
    }

    /// Reads a key written by [`Self::to_text`].
    pub fn from_text(text: &str) -> Result<Self, SignatureError> {
        let malformed = SignatureError::MalformedKey("secret", SECRET_PREFIX);
        let seed = decode_key(text, SECRET_PREFIX).ok_or(malformed)?;
        Ok(Self(ed25519_dalek::SigningKey::from_bytes(&seed)))
    }

    /// The matching public key.
    pub fn verifying_key(&self) -> VerifyingKey {
        VerifyingKey(self.0.verifying_key())
    }
}

impl VerifyingKey {
    /// The key as one line of text, for a key file.
    pub fn to_text(&self) -> String {
        format!("{PUBLIC_PREFIX}{}\n", BASE64.encode(self.0.to_bytes()))
    }

    /// Reads a key written by [`Self::to_text`].
    pub fn from_text(text: &str) -> Result<Self, SignatureError> {
        let malformed = || SignatureError::MalformedKey("public", PUBLIC_PREFIX);
        let bytes = decode_key(text, PUBLIC_PREFIX).ok_or_else(malformed)?;
        ed25519_dalek::VerifyingKey::from_bytes(&bytes)
            .map(Self)
            .map_err(|_| malformed())
    }

    /// A short identifier: the first 16 hex digits of the key's SHA-256.
    pub fn key_id(&self) -> String {
        Sha256Digest::of(self.0.as_bytes()).hex()[..16].to_owned()
    }
}

fn decode_key(text: &str, prefix: &str) -> Option<[u8; 32]> {
    let encoded = text.trim().strip_prefix(prefix)?;
    BASE64.decode(encoded).ok()?.try_into().ok()
}

/// The digests a signature covers: `omniforge.toml`, `skill.wasm`, and every other file of
/// the package (schemas, README, icon, license) through one digest of their sorted
/// `name NUL sha256 LF` lines — so swapping the input schema of a signed package is caught too.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SignedDigests {
    /// Digest of `omniforge.toml`.
    pub manifest: Sha256Digest,
    /// Digest of `skill.wasm`.
    pub wasm: Sha256Digest,
    /// Digest of the list of all other files (except `omniforge.sig`) and their digests.
    pub other_files: Sha256Digest,
}

impl SignedDigests {
    /// The digests of a package's files, by path (a missing manifest or component counts as
    /// empty; validation rejects such packages anyway).
    pub fn of_files(files: &BTreeMap<String, Vec<u8>>) -> Self {
        let digest_of = |name: &str| Sha256Digest::of(files.get(name).map_or(&[][..], |f| f));
        let mut listing = String::new();
        for (name, data) in files {
            if ![MANIFEST_FILE, COMPONENT_FILE, SIGNATURE_FILE].contains(&name.as_str()) {
                listing.push_str(&format!("{name}\0{}\n", Sha256Digest::of(data).hex()));
            }
        }
        Self {
            manifest: digest_of(MANIFEST_FILE),
            wasm: digest_of(COMPONENT_FILE),
            other_files: Sha256Digest::of(listing.as_bytes()),
        }
    }

    fn message(&self) -> String {
        format!(
            "{DOMAIN}\n{}\n{}\n{}\n",
            self.manifest, self.wasm, self.other_files
        )
    }
}

/// The content of `omniforge.sig`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PackageSignature {
    /// Always `ed25519`.
    pub algorithm: String,
    /// Id of the signing key ([`VerifyingKey::key_id`]).
    pub key_id: String,
    /// Digest of the signed `omniforge.toml`.
    pub manifest_sha256: Sha256Digest,
    /// Digest of the signed `skill.wasm`.
    pub wasm_sha256: Sha256Digest,
    /// Digest of the listing of the other signed files.
    pub other_files_sha256: Sha256Digest,
    /// The signature, base64.
    pub signature: String,
}

impl PackageSignature {
    /// Signs a package's digests.
    pub fn sign(key: &SigningKey, digests: &SignedDigests) -> Self {
        let signature = key.0.sign(digests.message().as_bytes());
        Self {
            algorithm: "ed25519".into(),
            key_id: key.verifying_key().key_id(),
            manifest_sha256: digests.manifest,
            wasm_sha256: digests.wasm,
            other_files_sha256: digests.other_files,
            signature: BASE64.encode(signature.to_bytes()),
        }
    }

    /// Parses `omniforge.sig`.
    pub fn from_json(bytes: &[u8]) -> Result<Self, SignatureError> {
        let sig: Self =
            serde_json::from_slice(bytes).map_err(|e| SignatureError::Malformed(e.to_string()))?;
        if sig.algorithm != "ed25519" {
            return Err(SignatureError::Malformed(format!(
                "unknown algorithm {:?}",
                sig.algorithm
            )));
        }
        Ok(sig)
    }

    /// The signature as `omniforge.sig` content.
    pub fn to_json(&self) -> Vec<u8> {
        serde_json::to_vec_pretty(self).expect("signatures serialize")
    }

    /// Checks that this signature covers exactly these files and was made by `key`.
    pub fn verify(
        &self,
        key: &VerifyingKey,
        digests: &SignedDigests,
    ) -> Result<(), SignatureError> {
        if self.manifest_sha256 != digests.manifest {
            return Err(SignatureError::ContentChanged("omniforge.toml"));
        }
        if self.wasm_sha256 != digests.wasm {
            return Err(SignatureError::ContentChanged("skill.wasm"));
        }
        if self.other_files_sha256 != digests.other_files {
            return Err(SignatureError::ContentChanged(
                "set of other files (schemas, README, icon)",
            ));
        }
        if self.key_id != key.key_id() {
            return Err(SignatureError::OtherKey {
                signed_by: self.key_id.clone(),
                given: key.key_id(),
            });
        }
        let bytes: [u8; 64] = BASE64
            .decode(&self.signature)
            .ok()
            .and_then(|b| b.try_into().ok())
            .ok_or_else(|| {
                SignatureError::Malformed("the signature is not 64 bytes of base64".into())
            })?;
        key.0
            .verify(
                digests.message().as_bytes(),
                &ed25519_dalek::Signature::from_bytes(&bytes),
            )
            .map_err(|_| SignatureError::BadSignature(key.key_id()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_round_trip_through_text_and_never_show_the_secret() {
        let key = SigningKey::generate();
        let again = SigningKey::from_text(&key.to_text()).unwrap();
        assert_eq!(again.verifying_key(), key.verifying_key());
        let public = VerifyingKey::from_text(&key.verifying_key().to_text()).unwrap();
        assert_eq!(public, key.verifying_key());
        let secret_b64 = key
            .to_text()
            .trim()
            .strip_prefix(SECRET_PREFIX)
            .unwrap()
            .to_owned();
        assert!(!format!("{key:?}").contains(&secret_b64));
        assert!(
            SigningKey::from_text(&public.to_text()).is_err(),
            "a public key is not a secret key"
        );
    }

    #[test]
    fn signatures_verify_only_for_the_signed_files_and_key() {
        let key = SigningKey::generate();
        let mut files = BTreeMap::new();
        files.insert(MANIFEST_FILE.to_string(), b"toml".to_vec());
        files.insert(COMPONENT_FILE.to_string(), b"wasm".to_vec());
        files.insert("schemas/input.json".to_string(), b"{}".to_vec());
        let digests = SignedDigests::of_files(&files);
        let sig = PackageSignature::sign(&key, &digests);
        let sig = PackageSignature::from_json(&sig.to_json()).unwrap();
        sig.verify(&key.verifying_key(), &digests).unwrap();

        let mut changed = files.clone();
        changed.insert(COMPONENT_FILE.to_string(), b"other".to_vec());
        assert_eq!(
            sig.verify(&key.verifying_key(), &SignedDigests::of_files(&changed)),
            Err(SignatureError::ContentChanged("skill.wasm"))
        );
        let mut schema_swapped = files.clone();
        schema_swapped.insert(
            "schemas/input.json".to_string(),
            b"{\"type\":\"null\"}".to_vec(),
        );
        assert!(matches!(
            sig.verify(
                &key.verifying_key(),
                &SignedDigests::of_files(&schema_swapped)
            ),
            Err(SignatureError::ContentChanged(_))
        ));
        let mut signed_again = files.clone();
        signed_again.insert(SIGNATURE_FILE.to_string(), sig.to_json());
        sig.verify(
            &key.verifying_key(),
            &SignedDigests::of_files(&signed_again),
        )
        .unwrap();

        let stranger = SigningKey::generate().verifying_key();
        assert!(matches!(
            sig.verify(&stranger, &digests),
            Err(SignatureError::OtherKey { .. })
        ));

        let mut forged = sig.clone();
        forged.signature = BASE64.encode([7u8; 64]);
        assert!(matches!(
            forged.verify(&key.verifying_key(), &digests),
            Err(SignatureError::BadSignature(_))
        ));
    }
}
