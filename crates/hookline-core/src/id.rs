//! Identifier newtypes, so a webhook id can never be passed as a delivery id.
//!
//! Callers create them from UUIDv7 (time-ordered, so ids sort by creation);
//! reading the clock is the caller's business, not core's.

use std::{fmt, str::FromStr};

use uuid::Uuid;

/// A string that is not a valid id.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not a valid id")]
pub struct InvalidId;

macro_rules! uuid_id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(Uuid);

        impl $name {
            /// Wraps a UUID.
            pub fn from_uuid(uuid: Uuid) -> Self {
                Self(uuid)
            }

            /// The UUID inside.
            pub fn as_uuid(&self) -> Uuid {
                self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.hyphenated().fmt(f)
            }
        }

        impl FromStr for $name {
            type Err = InvalidId;

            fn from_str(s: &str) -> Result<Self, InvalidId> {
                Uuid::try_parse(s).map(Self).map_err(|_| InvalidId)
            }
        }
    };
}

uuid_id!(
    /// A webhook.
    WebhookId
);
uuid_id!(
    /// A delivery: one event to one webhook. Sent as `Webhook-Id`.
    DeliveryId
);
uuid_id!(
    /// One attempt of a delivery.
    AttemptId
);

impl DeliveryId {
    /// The delivery of `event` (of `tenant`) to `webhook`, derived rather
    /// than drawn: a UUIDv7 whose time is `at_ms` (when the event was
    /// accepted, unix milliseconds) and whose other 74 bits come from
    /// SHA-256 of the three names. Every worker that fans out the same event
    /// message names its deliveries alike, so a request made before a crash
    /// and the one made after carry the same `Webhook-Id`.
    pub fn derive(tenant: &crate::TenantId, event: &crate::EventId, webhook: WebhookId, at_ms: i64) -> Self {
        use sha2::{Digest, Sha256};
        let mut hash = Sha256::new();
        // Lengths first: no two different triples hash the same input.
        for part in [tenant.as_str().as_bytes(), event.as_str().as_bytes()] {
            hash.update(u64::try_from(part.len()).unwrap_or(u64::MAX).to_be_bytes());
            hash.update(part);
        }
        hash.update(webhook.as_uuid().as_bytes());
        let digest = hash.finalize();
        let mut rest = [0u8; 10];
        rest.copy_from_slice(&digest[..10]);
        let millis = u64::try_from(at_ms).unwrap_or(0);
        Self(uuid::Builder::from_unix_timestamp_millis(millis, &rest).into_uuid())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A derived delivery id is a UUIDv7 at the given time, the same for the
    /// same triple and different when any part differs.
    #[test]
    fn derived_delivery_ids_are_stable_and_distinct() {
        let tenant = crate::TenantId::default();
        let other_tenant = crate::TenantId::parse("acme").expect("valid");
        let event = crate::EventId::parse("evt_1").expect("valid");
        let other_event = crate::EventId::parse("evt_2").expect("valid");
        let webhook = WebhookId::from_uuid(Uuid::from_u128(1));
        let other_webhook = WebhookId::from_uuid(Uuid::from_u128(2));
        let at = 1_764_000_000_123;
        let id = DeliveryId::derive(&tenant, &event, webhook, at);
        assert_eq!(id, DeliveryId::derive(&tenant, &event, webhook, at));
        assert_eq!(id.as_uuid().get_version_num(), 7);
        let (secs, nanos) = id.as_uuid().get_timestamp().expect("v7 has a time").to_unix();
        assert_eq!(i64::try_from(secs).expect("small") * 1000 + i64::from(nanos / 1_000_000), at);
        for other in [
            DeliveryId::derive(&other_tenant, &event, webhook, at),
            DeliveryId::derive(&tenant, &other_event, webhook, at),
            DeliveryId::derive(&tenant, &event, other_webhook, at),
        ] {
            assert_ne!(id, other);
        }
    }

    /// Ids print as hyphenated UUIDs and parse back; anything else is refused.
    #[test]
    fn display_and_parse_round_trip() {
        let id = WebhookId::from_uuid(Uuid::from_u128(0x0193_0000_0000_7000_8000_0000_0000_0001));
        let text = id.to_string();
        assert_eq!(text, "01930000-0000-7000-8000-000000000001");
        assert_eq!(text.parse::<WebhookId>(), Ok(id));
        assert_eq!("nope".parse::<DeliveryId>(), Err(InvalidId));
        assert_eq!("".parse::<AttemptId>(), Err(InvalidId));
    }
}
