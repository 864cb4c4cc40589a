//! [`PortalError`]: what a portal request ends with when it cannot go on —
//! the sign-in page, a refused form, or a page saying why, in the
//! session's layout. Operation errors become pages through
//! [`Session::problem`].

use axum::{
    extract::rejection::FormRejection,
    http::StatusCode,
    response::{IntoResponse, Redirect, Response},
};
use maud::{Markup, html};

use super::{layout::page, session::Session};
use crate::ops;

/// Why a portal request ends early.
#[derive(Debug)]
pub(crate) enum PortalError {
    /// No valid session: to the sign-in page.
    SignIn,
    /// The posted form does not decode (a missing field): answered as axum
    /// words it (`422`).
    Form(FormRejection),
    /// A form posted without this session's CSRF token (`403`).
    Csrf,
    /// A page saying what was not possible.
    Page {
        /// The status it is answered with.
        status: StatusCode,
        /// The whole page.
        page: Markup,
    },
}

impl IntoResponse for PortalError {
    fn into_response(self) -> Response {
        match self {
            Self::SignIn => Redirect::to("/ui/login").into_response(),
            Self::Form(rejection) => rejection.into_response(),
            Self::Csrf => (
                StatusCode::FORBIDDEN,
                "This form has expired or did not come from Hookline; go back, reload and try again.",
            )
                .into_response(),
            Self::Page { status, page } => (status, page).into_response(),
        }
    }
}

impl Session {
    /// A "not possible" page (`status`) saying `detail`.
    pub(super) fn refuse(&self, status: StatusCode, detail: &str) -> PortalError {
        let body = html! {
            p.error role="alert" { (detail) }
            p { a href="/ui/webhooks" { "Back to webhooks" } }
        };
        PortalError::Page { status, page: page("Not possible", Some(self), body) }
    }

    /// The page for an operation's error: `404` for what the session cannot
    /// see, `503` while the database or broker is away, `500` (logged, said
    /// opaquely) for what should not happen, `400` for the rest.
    pub(super) fn problem(&self, error: ops::Error) -> PortalError {
        use ops::Error as E;
        match error {
            E::NotFound(_) => self.refuse(StatusCode::NOT_FOUND, &error.to_string()),
            E::Store(e) if e.is_transient() => {
                tracing::warn!(error.message = %e, "database unavailable");
                self.refuse(StatusCode::SERVICE_UNAVAILABLE, "The database is unavailable; try again shortly.")
            }
            E::BrokerUnavailable => {
                self.refuse(StatusCode::SERVICE_UNAVAILABLE, "The message broker is unavailable; try again shortly.")
            }
            E::Store(_) | E::Internal(_) => {
                log_internal(&error);
                self.refuse(StatusCode::INTERNAL_SERVER_ERROR, "An internal error occurred.")
            }
            E::Refused(_) | E::Blocked(_) | E::WebhookLimit { .. } | E::WebhookInactive => {
                self.refuse(StatusCode::BAD_REQUEST, &error.to_string())
            }
        }
    }
}

/// Logs an unexpected error once, with its cause chain.
fn log_internal(error: &(dyn std::error::Error + 'static)) {
    let mut chain = Vec::new();
    let mut source = error.source();
    while let Some(cause) = source {
        chain.push(cause.to_string());
        source = cause.source();
    }
    tracing::error!(error.message = %error, error.cause_chain = ?chain, "portal request failed");
}

/// `.or_page(&session)?`: an operation's error as the session's page.
pub(super) trait OrPage<T> {
    /// The value, or the page for the error.
    fn or_page(self, session: &Session) -> Result<T, PortalError>;
}

impl<T> OrPage<T> for Result<T, ops::Error> {
    fn or_page(self, session: &Session) -> Result<T, PortalError> {
        self.map_err(|e| session.problem(e))
    }
}
