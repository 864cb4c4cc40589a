//! Refusing webhook URLs that point inward, when they are created or
//! changed: an IP literal is checked as it is, a name by what it resolves to
//! now. The worker checks again at connect time, on the address it really
//! connects to, so a name re-pointed later is caught there.

use std::{net::IpAddr, time::Duration};

use axum::http::StatusCode;
use hookline_core::{AllowList, WebhookUrl};

use crate::ApiError;

/// How long creation waits for a name to resolve before accepting the URL
/// (the worker's own check still applies).
const RESOLVE_TIMEOUT: Duration = Duration::from_secs(2);

fn blocked(e: hookline_core::Blocked) -> ApiError {
    ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "blocked_destination", format!("url: {e}")).with_field("url")
}

/// `Err` (422 `blocked_destination`) when `url` is or resolves to an address
/// deliveries may not go to. A name that does not resolve (yet) is
/// accepted: its deliveries fail with a DNS error until it does.
pub(crate) async fn check(url: &WebhookUrl, allow: &AllowList) -> Result<(), ApiError> {
    let url = url.as_url();
    let port = url.port_or_known_default().unwrap_or(443);
    match url.host() {
        Some(url::Host::Ipv4(ip)) => allow.check(IpAddr::V4(ip)).map_err(blocked),
        Some(url::Host::Ipv6(ip)) => allow.check(IpAddr::V6(ip)).map_err(blocked),
        Some(url::Host::Domain(name)) => {
            let Ok(Ok(addrs)) = tokio::time::timeout(RESOLVE_TIMEOUT, tokio::net::lookup_host((name, port))).await
            else {
                return Ok(());
            };
            for addr in addrs {
                allow.check(addr.ip()).map_err(blocked)?;
            }
            Ok(())
        }
        None => Ok(()),
    }
}
