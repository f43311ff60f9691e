//! The API's extractors: axum's `Json`, `Query` and `Path`, except that a body, query string or
//! path that does not parse is answered like every other API error — JSON `{"error": ...}` with
//! axum's status (400, 415, 422) — instead of axum's plain text.

use axum::extract::{FromRequest, FromRequestParts, OptionalFromRequest, Request};
use axum::http::StatusCode;
use axum::http::request::Parts;
use axum::response::Response;
use serde::de::DeserializeOwned;

use super::api::error;

/// A JSON request body: an object (serde would also take `[..]` for a struct, by position).
pub struct ApiJson<T>(pub T);

fn object<T: DeserializeOwned>(v: serde_json::Value) -> Result<T, Response> {
    if !v.is_object() {
        return Err(error(
            StatusCode::UNPROCESSABLE_ENTITY,
            "the body must be a JSON object",
        ));
    }
    serde_json::from_value(v).map_err(|e| {
        error(
            StatusCode::UNPROCESSABLE_ENTITY,
            &format!("the body does not fit: {e}"),
        )
    })
}

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for ApiJson<T> {
    type Rejection = Response;
    async fn from_request(req: Request, state: &S) -> Result<Self, Response> {
        match <axum::Json<serde_json::Value> as FromRequest<S>>::from_request(req, state).await {
            Ok(axum::Json(v)) => object(v).map(ApiJson),
            Err(r) => Err(error(r.status(), &r.body_text())),
        }
    }
}

/// An optional body: none without a Content-Type, refused when one is sent but is not JSON.
impl<T: DeserializeOwned, S: Send + Sync> OptionalFromRequest<S> for ApiJson<T> {
    type Rejection = Response;
    async fn from_request(req: Request, state: &S) -> Result<Option<Self>, Response> {
        match <axum::Json<serde_json::Value> as OptionalFromRequest<S>>::from_request(req, state)
            .await
        {
            Ok(Some(axum::Json(v))) => object(v).map(|v| Some(ApiJson(v))),
            Ok(None) => Ok(None),
            Err(r) => Err(error(r.status(), &r.body_text())),
        }
    }
}

/// The query string.
pub struct ApiQuery<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for ApiQuery<T> {
    type Rejection = Response;
    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Response> {
        match axum::extract::Query::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Query(v)) => Ok(ApiQuery(v)),
            Err(r) => Err(error(r.status(), &r.body_text())),
        }
    }
}

/// The path's parameters (a segment that is not UTF-8 once percent-decoded is a 400).
pub struct ApiPath<T>(pub T);

impl<T: DeserializeOwned + Send, S: Send + Sync> FromRequestParts<S> for ApiPath<T> {
    type Rejection = Response;
    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Response> {
        match axum::extract::Path::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Path(v)) => Ok(ApiPath(v)),
            Err(r) => Err(error(r.status(), &r.body_text())),
        }
    }
}
