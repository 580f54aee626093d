//! Anthropic routes: Messages.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::Response;

use super::proxy;
use crate::convo::Api;
use crate::state::AppState;

/// `POST /v1/messages`
pub async fn messages(State(s): State<Arc<AppState>>, headers: HeaderMap, body: Body) -> Response {
    proxy(s, Api::Messages, "/v1/messages", headers, body).await
}
