-- Signing: the scheme a webhook chose, and token rotation with a grace period.
-- Tokens (current and previous) are stored sealed (`enc:v1:<key id>:…`, see
-- the store's `secret` module); rows from before are re-sealed at start.

ALTER TABLE webhooks
    -- `hookline` (Webhook-Signature over the body) or `standard-webhooks`
    -- (v1 signature over "id.timestamp.body").
    ADD COLUMN signature_scheme          text        NOT NULL DEFAULT 'hookline'
                                                     CHECK (signature_scheme IN ('hookline', 'standard-webhooks')),
    -- The token replaced by the last rotation, still signing (beside the new
    -- one) until `previous_token_expires_at`.
    ADD COLUMN previous_token            text,
    ADD COLUMN previous_token_expires_at timestamptz;
