//! Refusing webhook URLs that point inward, when they are created or
//! changed: an IP literal is checked as it is, a name by what it resolves to
//! now. The worker checks again at connect time, on the address it really
//! connects to, so a name re-pointed later is caught there.

use std::{net::IpAddr, time::Duration};

use hookline_core::{AllowList, Blocked, WebhookUrl};

/// How long creation waits for a name to resolve before accepting the URL
/// (the worker's own check still applies).
const RESOLVE_TIMEOUT: Duration = Duration::from_secs(2);

/// `Err` when `url` is or resolves to an address deliveries may not go to.
/// A name that does not resolve (yet) is accepted: its deliveries fail with
/// a DNS error until it does.
pub(super) async fn check(url: &WebhookUrl, allow: &AllowList) -> Result<(), Blocked> {
    let url = url.as_url();
    let port = url.port_or_known_default().unwrap_or(443);
    match url.host() {
        Some(url::Host::Ipv4(ip)) => allow.check(IpAddr::V4(ip)),
        Some(url::Host::Ipv6(ip)) => allow.check(IpAddr::V6(ip)),
        Some(url::Host::Domain(name)) => {
            let Ok(Ok(addrs)) = tokio::time::timeout(RESOLVE_TIMEOUT, tokio::net::lookup_host((name, port))).await
            else {
                return Ok(());
            };
            addrs.into_iter().try_for_each(|addr| allow.check(addr.ip()))
        }
        None => Ok(()),
    }
}
