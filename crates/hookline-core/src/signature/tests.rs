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

/// The Standard Webhooks specification's published vectors.
#[test]
fn standard_webhooks_vectors() {
    let key = standard_key("whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD").expect("valid secret");
    let body = br#"{"email":"test@example.com","username":"test_user"}"#;
    let expected = "v1,tZ1I4/hDygAJgO5TYxiSd6Sd0kDW6hPenDe+bTa3Kkw=";
    assert_eq!(sign_standard(&key, "msg_27UH4WbU6Z5A5EzD8u03UvzRbpk", 1649367553, body), expected);
    assert!(verify_standard(&key, "msg_27UH4WbU6Z5A5EzD8u03UvzRbpk", 1649367553, body, expected));
    // The same signature does not verify another id, time or body.
    assert!(!verify_standard(&key, "msg_other", 1649367553, body, expected));
    assert!(!verify_standard(&key, "msg_27UH4WbU6Z5A5EzD8u03UvzRbpk", 1649367554, body, expected));
    assert!(!verify_standard(&key, "msg_27UH4WbU6Z5A5EzD8u03UvzRbpk", 1649367553, b"{}", expected));
    // One good entry among several verifies; none does not.
    let others = "v1,tFtCZ5RDCPxzWQRWXWPgrCgE2frDBe9gjpbWQxnVfsQ= v1,Mm7xgUVICxZfQ3bgf0h0Dof65L/IFx+PnZvnDWPCX6Q=";
    assert!(verify_standard(
        &key,
        "msg_27UH4WbU6Z5A5EzD8u03UvzRbpk",
        1649367553,
        body,
        &format!("{others} {expected}")
    ));
    assert!(!verify_standard(&key, "msg_27UH4WbU6Z5A5EzD8u03UvzRbpk", 1649367553, body, others));

    let key = standard_key("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").expect("valid secret");
    assert_eq!(
        sign_standard(&key, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, br#"{"test": 2432232314}"#),
        "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
    );
}

/// Standard Webhooks secrets must be `whsec_` base64 of 24 to 64 bytes.
#[test]
fn standard_secrets() {
    assert!(standard_key("whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD").is_ok());
    for bad in ["C2FVsBQIhrscChlQIMV+b5sSYspob7oD", "whsec_!!!!", "whsec_AAAA", "whsec_"] {
        assert_eq!(standard_key(bad), Err(InvalidStandardSecret), "{bad}");
    }
    let fresh = new_secret([7; 32]);
    assert_eq!(standard_key(&fresh).expect("fresh secrets are valid"), vec![7; 32]);
    assert!(SignatureScheme::StandardWebhooks.check_token(&token(&fresh)).is_ok());
    assert!(SignatureScheme::StandardWebhooks.check_token(&token("0123456789abcdef")).is_err());
    assert!(SignatureScheme::Hookline.check_token(&token("0123456789abcdef")).is_ok());
    for scheme in [SignatureScheme::Hookline, SignatureScheme::StandardWebhooks] {
        assert_eq!(SignatureScheme::parse(scheme.as_str()), Ok(scheme));
    }
    assert!(SignatureScheme::parse("v1").is_err());
}

/// During a rotation both tokens sign, the current first; each verifies.
#[test]
fn headers_carry_one_signature_per_token() {
    let new = token("whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD");
    let old = token("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw");
    let body = br#"{"event":"a.b"}"#;
    let [id, ts, sig] = signature_headers(SignatureScheme::Hookline, &[&new, &old], "d1", 42, body);
    assert_eq!(id, ("Webhook-Id", "d1".to_owned()));
    assert_eq!(ts, ("Webhook-Timestamp", "42".to_owned()));
    assert_eq!(sig.1, format!("{} {}", sign(&new, body), sign(&old, body)));
    assert!(verify(new.expose(), body, &sig.1) && verify(old.expose(), body, &sig.1));

    let [_, _, sig] = signature_headers(SignatureScheme::StandardWebhooks, &[&new, &old], "d1", 42, body);
    for t in [&new, &old] {
        let key = standard_key(t.expose()).expect("valid");
        assert!(verify_standard(&key, "d1", 42, body, &sig.1));
    }
    let [_, _, sig] = signature_headers(SignatureScheme::StandardWebhooks, &[&new], "d1", 42, body);
    assert_eq!(sig.1.split(' ').count(), 1);
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
