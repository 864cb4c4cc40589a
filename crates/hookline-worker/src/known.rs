//! What this worker last saw of each webhook (its account and health), so
//! a delivery is checked just before its request without a round trip
//! while what it saw is fresh.

use std::{
    collections::HashMap,
    sync::{Mutex, PoisonError},
    time::Duration,
};

use hookline_core::{HealthStatus, TenantId, WebhookId};
use tokio::time::Instant;

/// What this worker last saw of each webhook: its account (which never
/// changes), its health (as this worker last read or recorded it) and when
/// that health was read or recorded.
#[derive(Debug, Default)]
pub struct Known {
    webhooks: Mutex<HashMap<WebhookId, Seen>>,
}

#[derive(Clone, Debug)]
struct Seen {
    tenant: TenantId,
    status: HealthStatus,
    at: Instant,
}

impl Known {
    /// Notes a webhook's account and health, as just read from Postgres.
    pub fn note(&self, webhook: WebhookId, tenant: &TenantId, status: HealthStatus) {
        let mut webhooks = self.webhooks.lock().unwrap_or_else(PoisonError::into_inner);
        let at = Instant::now();
        match webhooks.get_mut(&webhook) {
            Some(seen) => {
                seen.status = status;
                seen.at = at;
            }
            None => {
                webhooks.insert(webhook, Seen { tenant: tenant.clone(), status, at });
            }
        }
    }

    /// Notes a webhook's health as just read or recorded, if its account
    /// is known.
    pub fn set_status(&self, webhook: WebhookId, status: HealthStatus) {
        if let Some(seen) = self.webhooks.lock().unwrap_or_else(PoisonError::into_inner).get_mut(&webhook) {
            seen.status = status;
            seen.at = Instant::now();
        }
    }

    /// A webhook's account and last seen health.
    pub fn get(&self, webhook: WebhookId) -> Option<(TenantId, HealthStatus)> {
        self.webhooks
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&webhook)
            .map(|seen| (seen.tenant.clone(), seen.status))
    }

    /// Whether `webhook` was last seen healthy, read or recorded within
    /// `fresh`; `None` when that was longer ago (or never): read it again.
    pub fn healthy_within(&self, webhook: WebhookId, fresh: Duration) -> Option<bool> {
        let webhooks = self.webhooks.lock().unwrap_or_else(PoisonError::into_inner);
        let seen = webhooks.get(&webhook)?;
        match seen.status {
            HealthStatus::Healthy if seen.at.elapsed() <= fresh => Some(true),
            HealthStatus::Healthy => None,
            _ => Some(false),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A health read is trusted for as long as it is fresh; an unhealthy one
    /// stops requests whatever its age.
    #[test]
    fn known_health_goes_stale() {
        let known = Known::default();
        let a = WebhookId::from_uuid(uuid::Uuid::from_u128(1));
        let t = TenantId::parse("t").expect("valid");
        assert_eq!(known.healthy_within(a, Duration::from_secs(1)), None, "never read");
        known.note(a, &t, HealthStatus::Healthy);
        assert_eq!(known.healthy_within(a, Duration::from_secs(1)), Some(true));
        std::thread::sleep(Duration::from_millis(5));
        assert_eq!(known.healthy_within(a, Duration::from_millis(1)), None, "stale: read again");
        known.set_status(a, HealthStatus::Unhealthy);
        assert_eq!(known.healthy_within(a, Duration::from_secs(1)), Some(false));
        assert_eq!(known.get(a), Some((t.clone(), HealthStatus::Unhealthy)));
    }
}
