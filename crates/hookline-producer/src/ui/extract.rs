//! The portal's extractors: [`CsrfForm`] (a session, its CSRF token
//! checked, and the form) for every `POST`, and [`Id`] for the id in a
//! page's path. Their rejections are [`PortalError`]s.

use std::sync::Arc;

use axum::{
    Form,
    extract::{FromRequest, FromRequestParts, Path, Request},
    http::{StatusCode, request::Parts},
};
use hookline_core::{DeliveryId, WebhookId};
use serde::{Deserialize, de::DeserializeOwned};

use super::{error::PortalError, session::Session};
use crate::{ops::Resource, state::AppState};

/// A form posted by a signed-in user with this session's CSRF token: the
/// session, then the form (`422` when it does not decode), then the token
/// (`403` when it is not this session's).
#[derive(Debug)]
pub(crate) struct CsrfForm<T> {
    pub(crate) session: Session,
    pub(crate) form: T,
}

/// The fields of a form that has only its CSRF token (other fields are
/// ignored).
#[derive(Debug, Deserialize)]
pub(crate) struct Nothing {}

#[derive(Deserialize)]
struct WithCsrf<T> {
    csrf: String,
    #[serde(flatten)]
    form: T,
}

impl<T> FromRequest<Arc<AppState>> for CsrfForm<T>
where
    T: DeserializeOwned + Send,
{
    type Rejection = PortalError;

    async fn from_request(request: Request, state: &Arc<AppState>) -> Result<Self, Self::Rejection> {
        let (mut parts, body) = request.into_parts();
        let session = Session::from_request_parts(&mut parts, state).await?;
        let Form(WithCsrf { csrf, form }) = Form::<WithCsrf<T>>::from_request(Request::from_parts(parts, body), state)
            .await
            .map_err(PortalError::Form)?;
        session.check_csrf(&csrf)?;
        Ok(Self { session, form })
    }
}

/// An id the portal's paths carry.
pub(crate) trait PathId: std::str::FromStr + Send {
    /// What a malformed one is: a resource that does not exist.
    const RESOURCE: Resource;
}

impl PathId for WebhookId {
    const RESOURCE: Resource = Resource::Webhook;
}

impl PathId for DeliveryId {
    const RESOURCE: Resource = Resource::Delivery;
}

/// The `{id}` of a page's path; one that is not an id is a `404` page
/// (the sign-in page without a session).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Id<T>(pub(crate) T);

impl<T: PathId> FromRequestParts<Arc<AppState>> for Id<T> {
    type Rejection = PortalError;

    async fn from_request_parts(parts: &mut Parts, state: &Arc<AppState>) -> Result<Self, Self::Rejection> {
        let raw = Path::<String>::from_request_parts(parts, state).await.ok();
        match raw.and_then(|Path(raw)| raw.parse().ok()) {
            Some(id) => Ok(Self(id)),
            None => {
                let session = Session::from_request_parts(parts, state).await?;
                Err(session.refuse(StatusCode::NOT_FOUND, &format!("{} not found", T::RESOURCE)))
            }
        }
    }
}
