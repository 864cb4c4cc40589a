-- Tenant-scoped listings and deletion of deliveries and events.
CREATE INDEX deliveries_tenant_idx ON deliveries (tenant, id DESC);
-- Webhook counts and health per tenant.
CREATE INDEX webhooks_tenant_status_idx ON webhooks (tenant, status);
