//! Per-principal rate limits: requests and estimated tokens per minute, counted
//! in fixed one-minute windows in the store (Redis when configured, so limits
//! hold across replicas). A store failure refuses the request.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::config::LimitsConfig;
use crate::error::ProxyError;
use crate::store::Store;

/// Rough token estimate for limits: about four bytes per token.
pub fn estimate_tokens(body_len: usize) -> u64 {
    (body_len as u64).div_ceil(4)
}

fn window() -> (u64, u64, Duration) {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs();
    (now / 60, 60 - now % 60, Duration::from_secs(61))
}

/// Count one request for `principal` (before its body is read, so malformed
/// or oversized requests count too); refuse when over the limit.
///
/// # Errors
/// [`ProxyError::RateLimited`] with the seconds until the window resets, or
/// [`ProxyError::Store`] when the counters cannot be reached (fail closed).
pub async fn check_request(
    store: &Store,
    cfg: &LimitsConfig,
    principal: &str,
) -> Result<(), ProxyError> {
    let (minute, retry_after, window) = window();
    if cfg.requests_per_minute > 0 {
        let (n, _) = store
            .incr(&format!("warden:rl:req:{principal}:{minute}"), 1, window)
            .await
            .map_err(|e| ProxyError::Store(e.to_string()))?;
        if n > cfg.requests_per_minute {
            return Err(ProxyError::RateLimited {
                what: "requests",
                retry_after,
            });
        }
    }
    Ok(())
}

/// Count `tokens` (estimated) for `principal`; refuse when over the limit.
///
/// # Errors
/// As [`check_request`].
pub async fn check_tokens(
    store: &Store,
    cfg: &LimitsConfig,
    principal: &str,
    tokens: u64,
) -> Result<(), ProxyError> {
    let (minute, retry_after, window) = window();
    if cfg.tokens_per_minute > 0 {
        let (n, _) = store
            .incr(
                &format!("warden:rl:tok:{principal}:{minute}"),
                tokens,
                window,
            )
            .await
            .map_err(|e| ProxyError::Store(e.to_string()))?;
        if n > cfg.tokens_per_minute {
            return Err(ProxyError::RateLimited {
                what: "tokens",
                retry_after,
            });
        }
    }
    Ok(())
}
