//! OpenAI routes: Chat Completions, Responses, Embeddings (guarded) and Models (passed through).

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};

use super::{authenticate, proxy, upstream_error};
use crate::convo::Api;
use crate::error::{ApiError, Flavor, ProxyError};
use crate::state::AppState;

/// `POST /v1/chat/completions`
pub async fn chat(State(s): State<Arc<AppState>>, headers: HeaderMap, body: Body) -> Response {
    proxy(s, Api::Chat, "/v1/chat/completions", headers, body).await
}

/// `POST /v1/responses`
pub async fn responses(State(s): State<Arc<AppState>>, headers: HeaderMap, body: Body) -> Response {
    proxy(s, Api::Responses, "/v1/responses", headers, body).await
}

/// `POST /v1/embeddings`
pub async fn embeddings(
    State(s): State<Arc<AppState>>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    proxy(s, Api::Embeddings, "/v1/embeddings", headers, body).await
}

/// `GET /v1/models`
pub async fn models(State(s): State<Arc<AppState>>, headers: HeaderMap) -> Response {
    models_get(s, headers, "/v1/models".into()).await
}

/// `GET /v1/models/{id}`
pub async fn model(
    State(s): State<Arc<AppState>>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Response {
    let id: String = id
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || "-._:".contains(*c))
        .collect();
    models_get(s, headers, format!("/v1/models/{id}")).await
}

async fn models_get(s: Arc<AppState>, headers: HeaderMap, path: String) -> Response {
    let fail = |e: ProxyError| ApiError::new(Flavor::OpenAi, e).into_response();
    if let Err(e) = authenticate(&s, &headers, "models").await {
        return fail(e);
    }
    let key = match s.openai.key() {
        Ok(k) => k,
        Err(e) => return fail(e),
    };
    let resp = match s
        .http
        .get(format!("{}{path}", s.openai.base_url))
        .bearer_auth(key)
        .send()
        .await
    {
        Ok(r) => r,
        Err(e) => return fail(upstream_error(e)),
    };
    let status = resp.status();
    let ct = resp.headers().get(http::header::CONTENT_TYPE).cloned();
    match resp.bytes().await {
        Ok(b) => {
            let mut r = Response::new(Body::from(b));
            *r.status_mut() = status;
            if let Some(ct) = ct {
                r.headers_mut().insert(http::header::CONTENT_TYPE, ct);
            }
            s.metrics.inc(
                "warden_requests_total",
                &[("route", "models"), ("status", status.as_str())],
                1,
            );
            r
        }
        Err(e) => fail(upstream_error(e)),
    }
}
