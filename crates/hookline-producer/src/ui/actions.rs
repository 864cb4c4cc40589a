//! What a webhook's page does: resume, delete (confirmed), send a test
//! event, rotate the token (the new one shown once), and recover (counted
//! first, then confirmed).

use axum::{http::StatusCode, response::Redirect};
use hookline_core::{WebhookId, parse_timestamp};
use maud::{Markup, html};
use serde::Deserialize;

use super::{
    St,
    error::{OrPage, PortalError},
    extract::{CsrfForm, Id, Nothing},
    layout::{page, when},
};
use crate::ops::{self, recover::Replay, webhooks::Grace};

/// `POST /ui/webhooks/{id}/resume`.
pub(super) async fn resume(
    state: St,
    Id(id): Id<WebhookId>,
    posted: CsrfForm<Nothing>,
) -> Result<Redirect, PortalError> {
    let session = posted.session;
    ops::webhooks::resume(&state, &session.caller, id).await.or_page(&session)?;
    Ok(Redirect::to(&format!("/ui/webhooks/{id}")))
}

#[derive(Debug, Deserialize)]
pub(super) struct DeleteForm {
    /// `yes` when the box is ticked.
    confirm: Option<String>,
}

/// `POST /ui/webhooks/{id}/delete` (the form asks for confirmation).
pub(super) async fn delete(
    state: St,
    Id(id): Id<WebhookId>,
    posted: CsrfForm<DeleteForm>,
) -> Result<Redirect, PortalError> {
    let CsrfForm { session, form } = posted;
    if form.confirm.as_deref() != Some("yes") {
        return Err(session.refuse(StatusCode::BAD_REQUEST, "Tick the box to confirm the deletion."));
    }
    ops::webhooks::delete(&state, &session.caller, id).await.or_page(&session)?;
    Ok(Redirect::to("/ui/webhooks"))
}

/// `POST /ui/webhooks/{id}/test`: one `hookline.test` event to this webhook
/// only; on to its delivery.
pub(super) async fn send_test(
    state: St,
    Id(id): Id<WebhookId>,
    posted: CsrfForm<Nothing>,
) -> Result<Redirect, PortalError> {
    let session = posted.session;
    let delivery = ops::webhooks::send_test(&state, &session.caller, id).await.or_page(&session)?;
    Ok(Redirect::to(&format!("/ui/deliveries/{delivery}")))
}

#[derive(Debug, Deserialize)]
pub(super) struct RotateForm {
    grace_hours: String,
}

/// `POST /ui/webhooks/{id}/rotate`: a generated token, shown once.
pub(super) async fn rotate(
    state: St,
    Id(id): Id<WebhookId>,
    posted: CsrfForm<RotateForm>,
) -> Result<Markup, PortalError> {
    let CsrfForm { session, form } = posted;
    let hours = form.grace_hours.trim().parse::<i64>();
    let Some((hours, grace)) = hours.ok().and_then(|h| Some((h, Grace::from_seconds(h.checked_mul(3600)?).ok()?)))
    else {
        let max = Grace::MAX_SECONDS / 3600;
        let detail = format!("The old token can keep signing for a whole number of hours, 0 to {max}.");
        return Err(session.refuse(StatusCode::BAD_REQUEST, &detail));
    };
    let issued = ops::webhooks::rotate_token(&state, &session.caller, id, None, grace).await.or_page(&session)?;
    let webhook = issued.webhook;
    let body = html! {
        p { "The new signing token of " a href={ "/ui/webhooks/" (webhook.id) } { (webhook.name.as_str()) } ", shown this once:" }
        pre id="token" { (webhook.token.expose()) }
        p { "The old one keeps signing beside it for " (hours) " h." }
    };
    Ok(page("Token rotated", Some(&session), body))
}

#[derive(Debug, Deserialize)]
pub(super) struct RecoverForm {
    since: String,
    #[serde(default)]
    until: String,
    /// Absent: count only; `yes`: queue them.
    confirm: Option<String>,
}

/// `POST /ui/webhooks/{id}/recover`: first counts (a dry run) and asks to
/// confirm, then queues.
pub(super) async fn recover(
    state: St,
    Id(id): Id<WebhookId>,
    posted: CsrfForm<RecoverForm>,
) -> Result<Markup, PortalError> {
    let CsrfForm { session, form } = posted;
    let since_text = form.since.trim();
    let until_text = form.until.trim();
    let Ok(since) = parse_timestamp(since_text) else {
        return Err(session.refuse(StatusCode::BAD_REQUEST, "“Created since” must be an RFC 3339 time."));
    };
    let until = if until_text.is_empty() {
        None
    } else {
        let Ok(until) = parse_timestamp(until_text) else {
            return Err(session.refuse(StatusCode::BAD_REQUEST, "“Until” must be an RFC 3339 time, or empty."));
        };
        Some(until)
    };
    let queue = form.confirm.as_deref() == Some("yes");
    let replay = Replay { since, until, dry_run: !queue };
    let r = ops::recover::recover(&state, &session.caller, id, replay).await.or_page(&session)?;
    let back = format!("/ui/webhooks/{id}");
    let body = if queue {
        html! {
            p {
                (r.queued) " deliveries queued; the last is attempted "
                @match r.finishes_at { Some(at) => { "at about " (when(Some(at))) }, None => { "now" } }
                "."
            }
            p { a href=(back) { "Back to the webhook" } }
        }
    } else {
        html! {
            p { (r.count) " failed or suspended deliveries were created in that window." }
            form method="post" action={ (back) "/recover" } {
                (session.csrf_field())
                input type="hidden" name="since" value=(since_text);
                input type="hidden" name="until" value=(until_text);
                input type="hidden" name="confirm" value="yes";
                button { "Replay them" } " " a href=(back) { "Cancel" }
            }
        }
    };
    Ok(page("Recover", Some(&session), body))
}
