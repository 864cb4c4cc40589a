//! The outbound HTTP client and one delivery attempt over it.
//!
//! Redirects are never followed (a 3xx is recorded as a failure): following
//! them would send signed payloads to places the webhook's owner never named.
//!
//! Server-side request forgery: the client resolves names through
//! [`GuardedResolver`], which drops every address the allow-list refuses, so
//! the check is made on the address actually connected to (a name that
//! resolves inward is caught at connect time, however it resolved when the
//! webhook was created). A URL holding an IP literal is checked before any
//! request. No proxy is used: a proxy would resolve names itself.

use std::{net::SocketAddr, sync::Arc, time::Instant};

use hookline_core::{
    AllowList, AttemptOutcome, Blocked, CustomHeaders, DeliveryId, SignatureScheme, SigningToken, TransportErrorKind,
    classify_status, retry::parse_retry_after, signature_headers,
};
use reqwest::{
    Client,
    dns::{Addrs, Name, Resolve, Resolving},
    header,
};
use time::OffsetDateTime;
use tracing::Instrument;

use crate::Settings;

/// Resolves names with the system resolver and keeps only the addresses
/// deliveries may go to; a name with none left fails with [`Blocked`].
#[derive(Debug)]
pub struct GuardedResolver {
    allow: AllowList,
}

impl Resolve for GuardedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let allow = self.allow.clone();
        Box::pin(async move {
            let resolved = tokio::net::lookup_host((name.as_str(), 0)).await.map_err(NotResolved)?;
            let mut refused = None;
            let allowed: Vec<SocketAddr> = resolved
                .filter(|addr| match allow.check(addr.ip()) {
                    Ok(()) => true,
                    Err(blocked) => {
                        refused.get_or_insert(blocked);
                        false
                    }
                })
                .collect();
            match (allowed.is_empty(), refused) {
                (true, Some(blocked)) => Err(Box::new(blocked) as Box<dyn std::error::Error + Send + Sync>),
                _ => Ok(Box::new(allowed.into_iter()) as Addrs),
            }
        })
    }
}

/// The system resolver found no address for a name (or failed to ask).
#[derive(Debug, thiserror::Error)]
#[error("dns error: {0}")]
struct NotResolved(#[source] std::io::Error);

/// Builds the client every delivery goes through.
pub fn client(settings: &Settings) -> reqwest::Result<Client> {
    Client::builder()
        .dns_resolver(Arc::new(GuardedResolver { allow: settings.allowed_networks.clone() }))
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(settings.request_timeout)
        .connect_timeout(settings.connect_timeout)
        .user_agent(concat!("Hookline/", env!("CARGO_PKG_VERSION")))
        .pool_max_idle_per_host(settings.concurrency.max(settings.dispatch_concurrency))
        .build()
}

/// What to send.
#[derive(Debug, Clone, Copy)]
pub struct Request<'a> {
    /// Target URL, parsed once when the webhook was read.
    pub url: &'a url::Url,
    /// Sent as `Webhook-Id`; stable across retries of one delivery.
    pub delivery_id: DeliveryId,
    /// The signing secrets: the current one, then one still in its rotation
    /// grace period.
    pub tokens: &'a [&'a SigningToken],
    /// How to sign.
    pub scheme: SignatureScheme,
    /// The exact body bytes (shared: sending does not copy them).
    pub body: &'a bytes::Bytes,
    /// The webhook's extra headers (none of them one Hookline sets).
    pub headers: &'a CustomHeaders,
    /// Addresses that may be connected to (for URLs holding an IP literal).
    pub allow: &'a AllowList,
}

/// What happened, ready to be recorded.
#[derive(Debug, Clone)]
pub struct Exchange {
    /// The classified result.
    pub outcome: AttemptOutcome,
    /// When the request was sent.
    pub sent_at: OffsetDateTime,
    /// When the response (its head) arrived.
    pub received_at: Option<OffsetDateTime>,
    /// Whole milliseconds from sending to the response or the error.
    pub duration_ms: i32,
    /// The start of the response body, lossily decoded.
    pub response_excerpt: Option<String>,
    /// The transport error's message, when there was no response.
    pub error_message: Option<String>,
    /// The receiver's `Retry-After`, when it sent one.
    pub retry_after: Option<std::time::Duration>,
}

/// Classifies a transport failure by the types in its cause chain: our
/// resolver's [`Blocked`] and [`NotResolved`], rustls' errors (TLS), then
/// reqwest's own connect/timeout flags.
fn transport_kind(e: &reqwest::Error) -> AttemptOutcome {
    if e.is_timeout() {
        return AttemptOutcome::TimedOut;
    }
    let caused_by = |check: &dyn Fn(&(dyn std::error::Error + 'static)) -> bool| causes(e).any(check);
    let kind = if caused_by(&|c| c.is::<Blocked>()) {
        TransportErrorKind::Blocked
    } else if caused_by(&|c| c.is::<NotResolved>()) {
        TransportErrorKind::Dns
    } else if caused_by(&|c| c.is::<rustls::Error>()) {
        TransportErrorKind::Tls
    } else if e.is_connect() {
        TransportErrorKind::Connect
    } else {
        TransportErrorKind::Io
    };
    AttemptOutcome::Transport { kind }
}

/// Every error below `e`: its sources, and the error an `io::Error` wraps
/// (which `io::Error::source` skips; a cause may then come twice).
fn causes(e: &reqwest::Error) -> impl Iterator<Item = &(dyn std::error::Error + 'static)> {
    let mut left: Vec<&(dyn std::error::Error + 'static)> = std::error::Error::source(e).into_iter().collect();
    std::iter::from_fn(move || {
        let cause = left.pop()?;
        left.extend(cause.source());
        if let Some(inner) = cause.downcast_ref::<std::io::Error>().and_then(std::io::Error::get_ref) {
            left.push(inner);
        }
        Some(cause)
    })
}

/// The IP address a URL names literally, if it does.
fn literal_ip(url: &url::Url) -> Option<std::net::IpAddr> {
    match url.host()? {
        url::Host::Ipv4(ip) => Some(ip.into()),
        url::Host::Ipv6(ip) => Some(ip.into()),
        url::Host::Domain(_) => None,
    }
}

/// The error and its causes on one line (reqwest's own message is terse).
fn error_chain(e: &reqwest::Error) -> String {
    let mut text = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// Reads at most `limit` bytes of the body and stops there.
async fn excerpt(response: &mut reqwest::Response, limit: usize) -> Option<String> {
    let mut bytes = Vec::new();
    while bytes.len() < limit {
        match response.chunk().await {
            Ok(Some(chunk)) => bytes.extend_from_slice(&chunk[..chunk.len().min(limit - bytes.len())]),
            Ok(None) | Err(_) => break,
        }
    }
    if bytes.is_empty() { None } else { Some(storable(String::from_utf8_lossy(&bytes).into_owned())) }
}

/// Text a receiver controls, made storable whatever it holds: Postgres
/// `text` refuses NUL, so each becomes U+FFFD (invalid UTF-8 already has).
pub fn storable(text: String) -> String {
    if text.contains('\0') { text.replace('\0', "\u{FFFD}") } else { text }
}

/// Signs and POSTs once. Never fails: every result is an outcome to record.
pub async fn attempt(client: &Client, request: Request<'_>, excerpt_limit: usize) -> Exchange {
    let sent_at = OffsetDateTime::now_utc();
    if let Some(Err(blocked)) = literal_ip(request.url).map(|ip| request.allow.check(ip)) {
        return Exchange {
            outcome: AttemptOutcome::Transport { kind: TransportErrorKind::Blocked },
            sent_at,
            received_at: None,
            duration_ms: 0,
            response_excerpt: None,
            error_message: Some(blocked.to_string()),
            retry_after: None,
        };
    }
    let started = Instant::now();
    let mut builder = client.post(request.url.clone()).header(header::CONTENT_TYPE, "application/json; charset=utf-8");
    for custom in request.headers.iter() {
        builder = builder.header(custom.name.as_str(), custom.value.expose());
    }
    let id = request.delivery_id.to_string();
    for (name, value) in signature_headers(request.scheme, request.tokens, &id, sent_at.unix_timestamp(), request.body)
    {
        builder = builder.header(name, value);
    }
    // The outbound request as a client span, child of the attempt; the URL's
    // host and path only (a query string may hold the receiver's secrets).
    let span = tracing::info_span!(
        "POST",
        otel.kind = "client",
        http.request.method = "POST",
        server.address = request.url.host_str().unwrap_or_default(),
        url.path = request.url.path(),
        http.response.status_code = tracing::field::Empty,
    );
    let result = builder.body(request.body.clone()).send().instrument(span.clone()).await;
    if let Ok(response) = &result {
        span.record("http.response.status_code", response.status().as_u16());
    }
    let elapsed = |started: Instant| i32::try_from(started.elapsed().as_millis()).unwrap_or(i32::MAX);
    match result {
        Ok(mut response) => {
            let received_at = OffsetDateTime::now_utc();
            let duration_ms = elapsed(started);
            let outcome = classify_status(response.status().as_u16());
            let retry_after = response
                .headers()
                .get(header::RETRY_AFTER)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| parse_retry_after(v, received_at.unix_timestamp()));
            let response_excerpt = excerpt(&mut response, excerpt_limit).await;
            Exchange {
                outcome,
                sent_at,
                received_at: Some(received_at),
                duration_ms,
                response_excerpt,
                error_message: None,
                retry_after,
            }
        }
        Err(e) => {
            let chain = storable(error_chain(&e));
            Exchange {
                outcome: transport_kind(&e),
                sent_at,
                received_at: None,
                duration_ms: elapsed(started),
                response_excerpt: None,
                error_message: Some(chain),
                retry_after: None,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn client_allowing(allow: AllowList) -> Client {
        Client::builder()
            .dns_resolver(Arc::new(GuardedResolver { allow }))
            .no_proxy()
            .timeout(std::time::Duration::from_secs(5))
            .build()
            .expect("client")
    }

    async fn kind_of(client: &Client, url: &str) -> AttemptOutcome {
        let url = url::Url::parse(url).expect("url");
        let token = SigningToken::parse("0123456789abcdef").expect("token");
        let body = bytes::Bytes::from_static(b"{}");
        let allow = AllowList::loopback();
        let request = Request {
            url: &url,
            delivery_id: DeliveryId::from_uuid(uuid::Uuid::now_v7()),
            tokens: &[&token],
            scheme: SignatureScheme::default(),
            body: &body,
            headers: &CustomHeaders::default(),
            allow: &allow,
        };
        attempt(client, request, 64).await.outcome
    }

    fn transport(kind: TransportErrorKind) -> AttemptOutcome {
        AttemptOutcome::Transport { kind }
    }

    /// A closed port is a connect failure.
    #[tokio::test]
    async fn closed_port_is_connect() {
        let port = std::net::TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr").port();
        let client = client_allowing(AllowList::loopback());
        assert_eq!(
            kind_of(&client, &format!("http://localhost:{port}/")).await,
            transport(TransportErrorKind::Connect)
        );
    }

    /// A server that answers a TLS hello with plain HTTP fails the
    /// handshake: recognised by rustls' error type, not by its text.
    #[tokio::test]
    async fn a_failed_handshake_is_tls() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let port = listener.local_addr().expect("addr").port();
        tokio::spawn(async move {
            use tokio::io::AsyncWriteExt;
            while let Ok((mut socket, _)) = listener.accept().await {
                let _ = socket.write_all(b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\n\r\n").await;
            }
        });
        let client = client_allowing(AllowList::loopback());
        assert_eq!(kind_of(&client, &format!("https://localhost:{port}/")).await, transport(TransportErrorKind::Tls));
    }

    /// A name whose every address the allow-list refuses is blocked, found
    /// by the resolver's error type in the cause chain.
    #[tokio::test]
    async fn a_refused_name_is_blocked() {
        let client = client_allowing(AllowList::default());
        assert_eq!(kind_of(&client, "http://localhost:9/").await, transport(TransportErrorKind::Blocked));
    }
}
