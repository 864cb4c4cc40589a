//! `Webhook-Signature`: base64 (standard alphabet, padded) of
//! HMAC-SHA256(key = the token's UTF-8 bytes, message = the raw body bytes).

use base64::{Engine, engine::general_purpose::STANDARD};
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

use crate::SigningToken;

#[cfg(test)]
mod tests;

type HmacSha256 = Hmac<Sha256>;

fn mac(key: &[u8]) -> HmacSha256 {
    HmacSha256::new_from_slice(key).expect("HMAC accepts keys of any length")
}

/// The signature of `body` under `token`.
pub fn sign(token: &SigningToken, body: &[u8]) -> String {
    let mut mac = mac(token.expose().as_bytes());
    mac.update(body);
    STANDARD.encode(mac.finalize().into_bytes().as_slice())
}

/// Whether `header` holds a valid signature of `body` under `token`. The
/// header may hold several space-separated signatures (as during a token
/// rotation); one match is enough. Comparison is constant-time; anything that
/// is not base64 simply does not match.
pub fn verify(token: &str, body: &[u8], header: &str) -> bool {
    header.split_whitespace().any(|candidate| {
        let Ok(expected) = STANDARD.decode(candidate) else { return false };
        let mut mac = mac(token.as_bytes());
        mac.update(body);
        mac.verify_slice(&expected).is_ok()
    })
}
