//! Tenants: their summary (webhook counts and health) and their deletion.

use hookline_core::TenantId;

use crate::{Error, Result, Store};

/// One tenant's webhooks at a glance.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TenantSummary {
    /// The tenant.
    pub tenant: TenantId,
    /// All its webhooks.
    pub webhooks: i64,
    /// How many are healthy.
    pub healthy: i64,
    /// How many are unhealthy.
    pub unhealthy: i64,
    /// How many are suspended.
    pub suspended: i64,
}

/// What deleting a tenant removed, per table.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TenantDeletion {
    /// Webhooks removed.
    pub webhooks: u64,
    /// Events removed.
    pub events: u64,
    /// Deliveries removed.
    pub deliveries: u64,
    /// Attempts removed.
    pub attempts: u64,
}

impl TenantDeletion {
    /// Rows removed in all.
    pub fn total(&self) -> u64 {
        self.webhooks + self.events + self.deliveries + self.attempts
    }
}

impl Store {
    /// Tenants that have webhooks, in id order, after the cursor `after`.
    pub async fn list_tenants(&self, after: Option<&TenantId>, limit: i64) -> Result<Vec<TenantSummary>> {
        let client = self.pool.get().await?;
        let rows = client
            .query(
                "SELECT tenant,
                        count(*) AS webhooks,
                        count(*) FILTER (WHERE status = 'healthy') AS healthy,
                        count(*) FILTER (WHERE status = 'unhealthy') AS unhealthy,
                        count(*) FILTER (WHERE status = 'suspended') AS suspended
                 FROM webhooks
                 WHERE $1::text IS NULL OR tenant > $1
                 GROUP BY tenant ORDER BY tenant LIMIT $2",
                &[&after.map(TenantId::as_str), &limit],
            )
            .await?;
        rows.iter()
            .map(|row| {
                Ok(TenantSummary {
                    tenant: TenantId::parse(row.try_get("tenant")?).map_err(|e| Error::corrupt("webhooks", e))?,
                    webhooks: row.try_get("webhooks")?,
                    healthy: row.try_get("healthy")?,
                    unhealthy: row.try_get("unhealthy")?,
                    suspended: row.try_get("suspended")?,
                })
            })
            .collect()
    }

    /// Removes every webhook, event, delivery and attempt of `tenant`, in one
    /// transaction (an account closing: nothing of it remains).
    pub async fn delete_tenant(&self, tenant: &TenantId) -> Result<TenantDeletion> {
        let mut client = self.pool.get().await?;
        let tx = client.transaction().await?;
        let t = tenant.as_str();
        // Children first, so each count is what this tenant really had.
        let attempts = tx
            .execute("DELETE FROM attempts a USING deliveries d WHERE a.delivery_id = d.id AND d.tenant = $1", &[&t])
            .await?;
        let deliveries = tx.execute("DELETE FROM deliveries WHERE tenant = $1", &[&t]).await?;
        let events = tx.execute("DELETE FROM events WHERE tenant = $1", &[&t]).await?;
        let webhooks = tx.execute("DELETE FROM webhooks WHERE tenant = $1", &[&t]).await?;
        tx.commit().await?;
        Ok(TenantDeletion { webhooks, events, deliveries, attempts })
    }
}
