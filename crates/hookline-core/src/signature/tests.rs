//! Known-answer vectors and properties of signing.

use hmac::Mac;
use proptest::prelude::*;

use super::*;

fn token(text: &str) -> SigningToken {
    SigningToken::parse(text).expect("valid token")
}

fn check(key: &str, body: &[u8], expected: &str) {
    assert_eq!(sign(&token(key), body), expected, "sign({key:?}, {body:?})");
    assert!(verify(key, body, expected));
}

/// Signatures match vectors computed independently (Python's hmac module).
#[test]
fn known_answers() {
    check(
        "whsec_0123456789abcdef",
        br#"{"event":"license.created","data":{"licenseKey":"ABCD-1234"},"triggeredAt":"2018-04-20T13:11:34.6926949Z"}"#,
        "6E4R1oYkQSUHqZH89DLSLDBQyCuqjNguVKfbboN/Dz8=",
    );
    check("0123456789abcdef", b"", "SW3JP6LSbq5QDsC8N6EicGuI+JY86/CJnQJF+uMT4kE=");
}

/// The HMAC is RFC 4231's HMAC-SHA256 (test case 2; its key is too short to
/// be a token, so the primitive is checked directly).
#[test]
fn rfc4231_case_2() {
    let mut m = mac(b"Jefe");
    m.update(b"what do ya want for nothing?");
    let hex: String = m.finalize().into_bytes().as_slice().iter().map(|b| format!("{b:02x}")).collect();
    assert_eq!(hex, "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
    assert!(verify("Jefe", b"what do ya want for nothing?", "W9zBRr9gdU5qBCQmCJV1x1oAPwidJzmDnexYuWTsOEM="));
}

/// Garbage, empty and truncated headers do not verify; one matching
/// signature among several does.
#[test]
fn header_forms() {
    let t = "0123456789abcdef";
    let good = "SW3JP6LSbq5QDsC8N6EicGuI+JY86/CJnQJF+uMT4kE=";
    for bad in ["", "   ", "not base64!", "SW3JP6LSbq5Q", "AAAA"] {
        assert!(!verify(t, b"", bad), "{bad:?}");
    }
    assert!(verify(t, b"", &format!(" {good} ")));
    assert!(verify(t, b"", &format!("AAAA {good}")));
}

proptest! {
    /// verify(sign(x)) holds for every token and body.
    #[test]
    fn sign_then_verify(key in "[ -~]{16,64}", body in proptest::collection::vec(any::<u8>(), 0..512)) {
        let key = key.trim().to_owned() + "0123456789abcdef";
        let signature = sign(&token(&key), &body);
        prop_assert!(verify(&key, &body, &signature));
    }

    /// A changed body byte, a different token or a changed signature fails.
    #[test]
    fn tampering_fails(body in proptest::collection::vec(any::<u8>(), 1..256), index in any::<usize>(), flip in 1u8..) {
        let key = "whsec_0123456789abcdef";
        let signature = sign(&token(key), &body);
        let mut changed = body.clone();
        let i = index % changed.len();
        changed[i] ^= flip;
        prop_assert!(!verify(key, &changed, &signature));
        prop_assert!(!verify("whsec_0123456789abcdeg", &body, &signature));
        let mut raw = STANDARD.decode(&signature).expect("base64");
        let j = i % raw.len();
        raw[j] ^= flip;
        prop_assert!(!verify(key, &body, &STANDARD.encode(raw)));
    }
}
