//! Signing tokens encrypted at rest.
//!
//! A token is stored as `enc:v1:<key id>:<base64(nonce ‖ ciphertext ‖ tag)>`,
//! sealed with AES-256-GCM (aws-lc-rs, already linked for TLS) under the
//! first key of `HOOKLINE_ENCRYPTION_KEYS`, with the webhook's id as
//! associated data, so a ciphertext copied onto another row does not open.
//! Every listed key opens what it sealed, which is how the key is rotated:
//! put the new key first, keep the old ones after it, restart, and the
//! services re-encrypt every token under the new key at start
//! ([`Store::reencrypt_tokens`]); then the old keys can go.
//!
//! Rows written before encryption existed hold plaintext; they are read as
//! such and re-encrypted at start like any other.

use std::fmt;

use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use base64::{Engine, engine::general_purpose::STANDARD};
use hookline_core::{SigningToken, WebhookId};

use crate::{Error, Result, Store};

const PREFIX: &str = "enc:v1:";

/// The key id and key used when `HOOKLINE_ENCRYPTION_KEYS` is unset: fine for
/// trying Hookline out, worthless as protection (it is public). Services log
/// a warning when they run with it.
const DEV_KEY_ID: &str = "dev";
const DEV_KEY: [u8; 32] = *b"hookline-development-key-public!";

/// Why `HOOKLINE_ENCRYPTION_KEYS` is not acceptable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InvalidEncryptionKeys {
    /// An entry is not `id:base64`.
    #[error("each entry must be `<key id>:<base64 of 32 bytes>`, comma-separated")]
    Shape,
    /// A key id is empty, too long or not letters, digits, `_` and `-`.
    #[error("a key id must be 1 to 32 letters, digits, `_` or `-`")]
    KeyId,
    /// A key is not 32 bytes of base64.
    #[error("key `{0}` must be base64 of exactly 32 bytes (e.g. `openssl rand -base64 32`)")]
    Key(String),
    /// Two entries share an id.
    #[error("key id `{0}` appears twice")]
    Duplicate(String),
}

/// The keys tokens are sealed with: the first seals, all open.
#[derive(Clone, PartialEq, Eq)]
pub struct EncryptionKeys(Vec<(String, [u8; 32])>);

impl fmt::Debug for EncryptionKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ids: Vec<&str> = self.0.iter().map(|(id, _)| id.as_str()).collect();
        write!(f, "EncryptionKeys({ids:?})")
    }
}

impl Default for EncryptionKeys {
    fn default() -> Self {
        Self(vec![(DEV_KEY_ID.to_owned(), DEV_KEY)])
    }
}

impl EncryptionKeys {
    /// Parses `id:base64,id:base64,…` (the first is the current key).
    pub fn parse(text: &str) -> Result<Self, InvalidEncryptionKeys> {
        let mut keys: Vec<(String, [u8; 32])> = Vec::new();
        for entry in text.split(',').map(str::trim).filter(|e| !e.is_empty()) {
            let (id, encoded) = entry.split_once(':').ok_or(InvalidEncryptionKeys::Shape)?;
            let valid_id =
                (1..=32).contains(&id.len()) && id.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
            if !valid_id {
                return Err(InvalidEncryptionKeys::KeyId);
            }
            let key: [u8; 32] = STANDARD
                .decode(encoded.trim())
                .ok()
                .and_then(|k| k.try_into().ok())
                .ok_or_else(|| InvalidEncryptionKeys::Key(id.to_owned()))?;
            if keys.iter().any(|(seen, _)| seen == id) {
                return Err(InvalidEncryptionKeys::Duplicate(id.to_owned()));
            }
            keys.push((id.to_owned(), key));
        }
        if keys.is_empty() { Err(InvalidEncryptionKeys::Shape) } else { Ok(Self(keys)) }
    }

    /// Whether these are the public development key (no key configured).
    pub fn is_development(&self) -> bool {
        self.0.iter().any(|(id, key)| id == DEV_KEY_ID && *key == DEV_KEY)
    }

    /// The id of the key that seals.
    pub fn current_id(&self) -> &str {
        &self.0[0].0
    }

    fn key(&self, id: &str) -> Option<LessSafeKey> {
        let (_, bytes) = self.0.iter().find(|(k, _)| k == id)?;
        Some(LessSafeKey::new(UnboundKey::new(&AES_256_GCM, bytes).expect("32 bytes is an AES-256 key")))
    }

    /// Seals `token` for the webhook `owner`.
    pub fn seal(&self, owner: WebhookId, token: &SigningToken) -> Result<String> {
        self.seal_text(owner, token.expose())
    }

    /// Seals any secret text of the webhook `owner` (a token, a secret
    /// header's value).
    pub fn seal_text(&self, owner: WebhookId, text: &str) -> Result<String> {
        let (id, _) = &self.0[0];
        let key = self.key(id).expect("the current key is listed");
        let mut nonce = [0u8; NONCE_LEN];
        aws_lc_rs::rand::fill(&mut nonce).map_err(|_| Error::Crypto("no randomness for a nonce"))?;
        let mut sealed = text.as_bytes().to_vec();
        key.seal_in_place_append_tag(Nonce::assume_unique_for_key(nonce), aad(owner).as_aad(), &mut sealed)
            .map_err(|_| Error::Crypto("sealing failed"))?;
        let mut stored = nonce.to_vec();
        stored.extend_from_slice(&sealed);
        Ok(format!("{PREFIX}{id}:{}", STANDARD.encode(stored)))
    }

    /// Opens a stored token of the webhook `owner` (plaintext rows from before
    /// encryption are returned as they are).
    pub fn open(&self, owner: WebhookId, stored: &str) -> Result<SigningToken> {
        let text = self.open_text(owner, stored, "token")?;
        SigningToken::parse(&text).map_err(|e| Error::corrupt("webhooks", format!("token: {e}")))
    }

    /// Opens secret text of the webhook `owner` sealed by
    /// [`EncryptionKeys::seal_text`] (`what` names it in errors); text
    /// without the sealed prefix is returned as it is.
    pub fn open_text(&self, owner: WebhookId, stored: &str, what: &str) -> Result<String> {
        let bad = |detail: &str| Error::corrupt("webhooks", format!("{what}: {detail}"));
        let Some(rest) = stored.strip_prefix(PREFIX) else {
            return Ok(stored.to_owned());
        };
        let (id, encoded) = rest.split_once(':').ok_or_else(|| bad("malformed"))?;
        let key = self.key(id).ok_or(Error::UnknownEncryptionKey(id.to_owned()))?;
        let mut bytes = STANDARD.decode(encoded).map_err(|_| bad("not base64"))?;
        if bytes.len() < NONCE_LEN {
            return Err(bad("too short"));
        }
        let mut sealed = bytes.split_off(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(&bytes).map_err(|_| bad("bad nonce"))?;
        let plain = key
            .open_in_place(nonce, aad(owner).as_aad(), &mut sealed)
            .map_err(|_| bad("does not open with its key (wrong key, or moved from another row)"))?;
        std::str::from_utf8(plain).map(str::to_owned).map_err(|_| bad("not UTF-8"))
    }

    /// Whether a stored value is sealed under the current key.
    pub fn is_current(&self, stored: &str) -> bool {
        stored.strip_prefix(PREFIX).and_then(|rest| rest.split_once(':')).is_some_and(|(id, _)| id == self.current_id())
    }
}

struct OwnerAad([u8; 16]);

impl OwnerAad {
    fn as_aad(&self) -> Aad<&[u8]> {
        Aad::from(&self.0[..])
    }
}

fn aad(owner: WebhookId) -> OwnerAad {
    OwnerAad(*owner.as_uuid().as_bytes())
}

impl Store {
    /// Re-seals, under the current key, every token (and previous token)
    /// and secret header value sealed under another key or stored in
    /// plaintext. Rows are updated one
    /// by one and only if unchanged meanwhile, so services starting together
    /// do not fight. Returns how many rows were re-sealed.
    pub async fn reencrypt_tokens(&self) -> Result<u64> {
        let keys = &self.keys;
        let client = self.pool.get().await?;
        let pattern = format!("{PREFIX}{}:%", keys.current_id());
        let rows = client
            .query(
                "SELECT id, token, previous_token FROM webhooks
                 WHERE token NOT LIKE $1 OR (previous_token IS NOT NULL AND previous_token NOT LIKE $1)",
                &[&pattern],
            )
            .await?;
        let mut done = 0;
        for row in rows {
            let id = WebhookId::from_uuid(row.try_get("id")?);
            let token: String = row.try_get("token")?;
            let previous: Option<String> = row.try_get("previous_token")?;
            let reseal = |stored: &str| -> Result<String> {
                if keys.is_current(stored) { Ok(stored.to_owned()) } else { keys.seal(id, &keys.open(id, stored)?) }
            };
            let (new_token, new_previous) = match (reseal(&token), previous.as_deref().map(reseal).transpose()) {
                (Ok(t), Ok(p)) => (t, p),
                (Err(e), _) | (_, Err(e)) => {
                    tracing::error!(webhook_id = %id, error.message = %e, "cannot re-encrypt a webhook's token");
                    continue;
                }
            };
            done += client
                .execute(
                    "UPDATE webhooks SET token = $2, previous_token = $3
                     WHERE id = $1 AND token = $4 AND previous_token IS NOT DISTINCT FROM $5",
                    &[&id.as_uuid(), &new_token, &new_previous, &token, &previous],
                )
                .await?;
        }
        // Secret header values, the same way.
        let rows =
            client.query("SELECT id, headers FROM webhooks WHERE headers @> '[{\"secret\": true}]'", &[]).await?;
        for row in rows {
            let id = WebhookId::from_uuid(row.try_get("id")?);
            let stored: serde_json::Value = row.try_get("headers")?;
            if !crate::headers::stale(keys, &stored) {
                continue;
            }
            let resealed = crate::headers::open(keys, id, &stored).and_then(|h| crate::headers::seal(keys, id, &h));
            match resealed {
                Ok(new) => {
                    done += client
                        .execute(
                            "UPDATE webhooks SET headers = $2 WHERE id = $1 AND headers = $3",
                            &[&id.as_uuid(), &new, &stored],
                        )
                        .await?;
                }
                Err(e) => {
                    tracing::error!(webhook_id = %id, error.message = %e, "cannot re-encrypt a webhook's secret headers")
                }
            }
        }
        if done > 0 {
            tracing::info!(
                rows = done,
                key_id = keys.current_id(),
                "re-encrypted webhook tokens and secret headers under the current key"
            );
        }
        Ok(done)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn token(text: &str) -> SigningToken {
        SigningToken::parse(text).expect("valid token")
    }

    fn owner(n: u128) -> WebhookId {
        WebhookId::from_uuid(uuid::Uuid::from_u128(n))
    }

    /// A sealed token opens to itself, is not plaintext, and differs each time.
    #[test]
    fn seal_and_open() {
        let keys = EncryptionKeys::parse(&format!("k1:{}", STANDARD.encode([1u8; 32]))).expect("valid");
        let t = token("whsec_0123456789abcdef");
        let a = keys.seal(owner(1), &t).expect("sealed");
        let b = keys.seal(owner(1), &t).expect("sealed");
        assert!(a.starts_with("enc:v1:k1:") && !a.contains("0123456789abcdef"));
        assert_ne!(a, b, "a fresh nonce each time");
        assert_eq!(keys.open(owner(1), &a).expect("opens"), t);
        assert!(keys.is_current(&a));
    }

    /// Moved to another row, tampered with, or under an unknown key: refused.
    #[test]
    fn tampering_is_detected() {
        let keys = EncryptionKeys::parse(&format!("k1:{}", STANDARD.encode([1u8; 32]))).expect("valid");
        let sealed = keys.seal(owner(1), &token("whsec_0123456789abcdef")).expect("sealed");
        assert!(keys.open(owner(2), &sealed).is_err(), "bound to its webhook");
        let mut flipped = sealed.clone().into_bytes();
        let last = flipped.len() - 3;
        flipped[last] = if flipped[last] == b'A' { b'B' } else { b'A' };
        assert!(keys.open(owner(1), &String::from_utf8(flipped).expect("ascii")).is_err());
        let other = EncryptionKeys::parse(&format!("k2:{}", STANDARD.encode([2u8; 32]))).expect("valid");
        assert!(matches!(other.open(owner(1), &sealed), Err(Error::UnknownEncryptionKey(id)) if id == "k1"));
    }

    /// Old keys still open after a rotation; the new one seals.
    #[test]
    fn rotation_keeps_old_keys_readable() {
        let old = EncryptionKeys::parse(&format!("k1:{}", STANDARD.encode([1u8; 32]))).expect("valid");
        let both =
            EncryptionKeys::parse(&format!("k2:{},k1:{}", STANDARD.encode([2u8; 32]), STANDARD.encode([1u8; 32])))
                .expect("valid");
        let t = token("whsec_0123456789abcdef");
        let sealed = old.seal(owner(1), &t).expect("sealed");
        assert_eq!(both.open(owner(1), &sealed).expect("old key opens"), t);
        assert!(!both.is_current(&sealed));
        assert!(both.seal(owner(1), &t).expect("sealed").starts_with("enc:v1:k2:"));
        // Plaintext from before encryption reads as itself.
        assert_eq!(both.open(owner(1), "whsec_0123456789abcdef").expect("plaintext"), t);
    }

    /// Bad key settings are refused with a reason.
    #[test]
    fn key_settings() {
        let k = STANDARD.encode([1u8; 32]);
        assert_eq!(EncryptionKeys::parse(""), Err(InvalidEncryptionKeys::Shape));
        assert_eq!(EncryptionKeys::parse(&k), Err(InvalidEncryptionKeys::Shape));
        assert_eq!(EncryptionKeys::parse("k1:AAAA"), Err(InvalidEncryptionKeys::Key("k1".into())));
        assert_eq!(EncryptionKeys::parse(&format!("bad id:{k}")), Err(InvalidEncryptionKeys::KeyId));
        assert_eq!(EncryptionKeys::parse(&format!("a:{k},a:{k}")), Err(InvalidEncryptionKeys::Duplicate("a".into())));
        assert!(EncryptionKeys::default().is_development());
        assert!(!EncryptionKeys::parse(&format!("a:{k}")).expect("valid").is_development());
        assert_eq!(
            format!("{:?}", EncryptionKeys::parse(&format!("a:{k}")).expect("valid")),
            r#"EncryptionKeys(["a"])"#
        );
    }
}
