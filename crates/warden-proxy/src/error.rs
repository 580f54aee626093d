//! Errors: configuration errors (before start) and request errors, which turn
//! into responses in the vendor's own error shape so SDKs surface them well.

use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::json;

/// A configuration or start-up error. Messages name the field, never the value.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The config file could not be read.
    #[error("{path}: {source}")]
    Io {
        /// File path.
        path: String,
        /// Underlying error.
        source: std::io::Error,
    },
    /// TOML syntax or type error.
    #[error("{origin}{}: {}", span.map(|l| format!(": line {l}")).unwrap_or_default(), redact_quoted(message))]
    Parse {
        /// Where the text came from.
        origin: String,
        /// Parser message.
        message: String,
        /// Line number, when known.
        span: Option<usize>,
    },
    /// A value is out of range or inconsistent.
    #[error("invalid config: {0}")]
    Invalid(String),
    /// An engine (packs, injection rules, policy, audit) failed to load.
    #[error("{what}: {message}")]
    Engine {
        /// Which engine.
        what: &'static str,
        /// Its error.
        message: String,
    },
}

/// Parser messages quote the offending value (`invalid type: string "..."`);
/// that value may be a secret, so quoted text is elided.
fn redact_quoted(msg: &str) -> String {
    let mut out = String::with_capacity(msg.len());
    let mut inside = false;
    for c in msg.chars() {
        if c == '"' {
            if inside {
                out.push_str("…\"");
            } else {
                out.push('"');
            }
            inside = !inside;
        } else if !inside {
            out.push(c);
        }
    }
    out
}

/// Which vendor's error JSON shape a response uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flavor {
    /// `{"error":{"message","type","param","code"}}`
    OpenAi,
    /// `{"type":"error","error":{"type","message"}}`
    Anthropic,
}

/// Why a request was refused or failed.
#[derive(Debug, thiserror::Error)]
pub enum ProxyError {
    /// No or invalid credentials.
    #[error("authentication failed: {0}")]
    Unauthenticated(String),
    /// Authenticated but not permitted.
    #[error("permission denied: {0}")]
    Forbidden(String),
    /// Over a per-principal limit.
    #[error("rate limit exceeded ({what}); retry after {retry_after}s")]
    RateLimited {
        /// `requests` or `tokens`.
        what: &'static str,
        /// Seconds until the window resets.
        retry_after: u64,
    },
    /// Body larger than `limits.max_body_bytes`.
    #[error("request body exceeds {0} bytes")]
    TooLarge(usize),
    /// Malformed request.
    #[error("{0}")]
    BadRequest(String),
    /// Refused by the guard: the reasons name types and rule ids only.
    #[error("request blocked by Warden: {}", reasons.join("; "))]
    Blocked {
        /// Entity types / rule ids that caused the block.
        reasons: Vec<String>,
    },
    /// The vendor did not answer in time.
    #[error("upstream timed out")]
    UpstreamTimeout,
    /// The vendor could not be reached or answered garbage.
    #[error("upstream error: {0}")]
    Upstream(String),
    /// The vault/counter store is unavailable (fail closed).
    #[error("state store unavailable: {0}")]
    Store(String),
    /// Anything else; the message is safe to show.
    #[error("internal error: {0}")]
    Internal(String),
}

impl ProxyError {
    /// HTTP status for this error.
    pub fn status(&self) -> StatusCode {
        match self {
            ProxyError::Unauthenticated(_) => StatusCode::UNAUTHORIZED,
            ProxyError::Forbidden(_) => StatusCode::FORBIDDEN,
            ProxyError::RateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
            ProxyError::TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            ProxyError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ProxyError::Blocked { .. } => StatusCode::BAD_REQUEST,
            ProxyError::UpstreamTimeout => StatusCode::GATEWAY_TIMEOUT,
            ProxyError::Upstream(_) => StatusCode::BAD_GATEWAY,
            ProxyError::Store(_) => StatusCode::SERVICE_UNAVAILABLE,
            ProxyError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// Short machine-readable code, also used as a metrics label.
    pub fn code(&self) -> &'static str {
        match self {
            ProxyError::Unauthenticated(_) => "unauthenticated",
            ProxyError::Forbidden(_) => "forbidden",
            ProxyError::RateLimited { .. } => "rate_limited",
            ProxyError::TooLarge(_) => "too_large",
            ProxyError::BadRequest(_) => "bad_request",
            ProxyError::Blocked { .. } => "warden_blocked",
            ProxyError::UpstreamTimeout => "upstream_timeout",
            ProxyError::Upstream(_) => "upstream_error",
            ProxyError::Store(_) => "store_unavailable",
            ProxyError::Internal(_) => "internal_error",
        }
    }

    fn openai_type(&self) -> &'static str {
        match self {
            ProxyError::Unauthenticated(_) => "authentication_error",
            ProxyError::Forbidden(_) => "permission_error",
            ProxyError::RateLimited { .. } => "rate_limit_error",
            ProxyError::TooLarge(_) | ProxyError::BadRequest(_) | ProxyError::Blocked { .. } => {
                "invalid_request_error"
            }
            _ => "api_error",
        }
    }

    fn anthropic_type(&self) -> &'static str {
        match self {
            ProxyError::Unauthenticated(_) => "authentication_error",
            ProxyError::Forbidden(_) => "permission_error",
            ProxyError::RateLimited { .. } => "rate_limit_error",
            ProxyError::TooLarge(_) => "request_too_large",
            ProxyError::BadRequest(_) | ProxyError::Blocked { .. } => "invalid_request_error",
            ProxyError::Store(_) => "overloaded_error",
            _ => "api_error",
        }
    }

    /// The error as a response in `flavor`'s shape.
    pub fn into_response_for(self, flavor: Flavor) -> Response {
        let status = self.status();
        let message = self.to_string();
        let body = match flavor {
            Flavor::OpenAi => {
                let mut err = json!({"message": message, "type": self.openai_type(), "param": null, "code": self.code()});
                if let ProxyError::Blocked { reasons } = &self {
                    err["warden_reasons"] = json!(reasons);
                }
                json!({ "error": err })
            }
            Flavor::Anthropic => {
                let mut err = json!({"type": self.anthropic_type(), "message": message});
                if let ProxyError::Blocked { reasons } = &self {
                    err["warden_reasons"] = json!(reasons);
                }
                json!({"type": "error", "error": err})
            }
        };
        let mut resp = (status, axum::Json(body)).into_response();
        if let ProxyError::RateLimited { retry_after, .. } = &self {
            if let Ok(v) = HeaderValue::from_str(&retry_after.to_string()) {
                resp.headers_mut().insert(http::header::RETRY_AFTER, v);
            }
        }
        resp
    }
}

/// A [`ProxyError`] bound to the flavor of the route it happened on.
#[derive(Debug)]
pub struct ApiError {
    /// Error shape.
    pub flavor: Flavor,
    /// The error.
    pub error: ProxyError,
}

impl ApiError {
    /// Bind an error to a flavor.
    pub fn new(flavor: Flavor, error: ProxyError) -> Self {
        ApiError { flavor, error }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        self.error.into_response_for(self.flavor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoted_values_are_elided() {
        assert_eq!(
            redact_quoted(r#"invalid type: string "sk-123", expected u64"#),
            "invalid type: string \"…\", expected u64"
        );
    }

    #[test]
    fn shapes() {
        let r = ProxyError::RateLimited {
            what: "requests",
            retry_after: 7,
        }
        .into_response_for(Flavor::Anthropic);
        assert_eq!(r.status(), 429);
        assert_eq!(r.headers()["retry-after"], "7");
    }
}
