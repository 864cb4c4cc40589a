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

#[cfg(test)]
mod tests {
    use super::*;

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
