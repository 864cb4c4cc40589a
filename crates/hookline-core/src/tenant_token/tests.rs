//! Tests of tenant tokens.

use time::{Duration, macros::datetime};

use super::*;

fn secret() -> TokenSecret {
    TokenSecret::new("a-secret-of-enough-length").expect("long enough")
}

const NOW: OffsetDateTime = datetime!(2026-11-24 09:00 UTC);

/// A minted token verifies to its tenant until it expires.
#[test]
fn mint_then_verify() {
    let tenant = TenantId::parse("acct_1.eu-2").expect("valid");
    let token = secret().mint(&tenant, NOW + Duration::minutes(10));
    assert!(looks_like_tenant_token(&token));
    assert_eq!(secret().verify(&token, NOW), Ok(tenant.clone()));
    assert_eq!(secret().verify(&token, NOW + Duration::minutes(9)), Ok(tenant));
    assert_eq!(secret().verify(&token, NOW + Duration::minutes(10)), Err(InvalidTenantToken::Expired));
}

/// Changing any part, or checking with another secret, fails.
#[test]
fn tampering_fails() {
    let token = secret().mint(&TenantId::parse("alpha").expect("valid"), NOW + Duration::hours(1));
    let other = TokenSecret::new("another-secret-entirely").expect("long enough");
    assert_eq!(other.verify(&token, NOW), Err(InvalidTenantToken::BadSignature));
    let beta = URL_SAFE_NO_PAD.encode("beta");
    let parts: Vec<&str> = token.split('.').collect();
    let swapped_tenant = format!("{}.{beta}.{}.{}", parts[0], parts[2], parts[3]);
    assert_eq!(secret().verify(&swapped_tenant, NOW), Err(InvalidTenantToken::BadSignature));
    let later = format!("{}.{}.{}.{}", parts[0], parts[1], parts[2].replace('1', "9"), parts[3]);
    assert_eq!(secret().verify(&later, NOW), Err(InvalidTenantToken::BadSignature));
    for junk in ["", "hlt1", "hlt1.a.b", "hlt1...", "x.y.z.!!!", "some-api-key"] {
        assert!(secret().verify(junk, NOW).is_err(), "{junk:?}");
    }
}

/// Secrets shorter than 16 bytes are refused, and never printed.
#[test]
fn secrets() {
    assert_eq!(TokenSecret::new("short").map(|_| ()), Err(WeakTokenSecret));
    assert_eq!(format!("{:?}", secret()), "TokenSecret(****)");
}
