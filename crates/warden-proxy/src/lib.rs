//! `warden serve`: a guard proxy in front of the OpenAI and Anthropic APIs.
//!
//! Agents point their SDK at Warden instead of the vendor. For every request
//! Warden authenticates the caller, applies rate limits, scans every text
//! position (system prompts, messages, content parts, tool results, tool-call
//! arguments in the history, documents) for PII, secrets and prompt injection,
//! redacts with placeholders that are stable across turns, forwards, restores
//! the originals in the response (streaming too), validates each tool call the
//! model returns against the policy before the agent sees it, and writes one
//! hash-chained audit record.
//!
//! The crate is a library: [`app`] builds the router (drive it with
//! `tower::ServiceExt::oneshot` or serve it), [`serve`] runs it on a listener
//! with graceful shutdown and optional TLS 1.3. Wire formats, the refusal shape
//! for denied tool calls, config and metrics are documented in `docs/proxy.md`.
//!
//! # Example
//! ```no_run
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let cfg = warden_proxy::config::Config::default();
//! warden_proxy::check_bind(&cfg)?;
//! let state = warden_proxy::AppState::build(cfg).await?;
//! let listener = std::net::TcpListener::bind("127.0.0.1:8080")?;
//! warden_proxy::serve(state, listener, std::future::pending()).await?;
//! # Ok(()) }
//! ```

#![deny(missing_docs)]

pub mod auth;
pub mod cache;
pub mod config;
pub mod convo;
pub mod engine;
pub mod error;
pub mod extract;
pub mod jsonw;
pub mod limits;
pub mod logline;
pub mod metrics;
pub mod pipeline;
pub mod respond;
pub mod routes;
pub mod sse;
pub mod state;
pub mod store;
pub mod upstream;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use axum::routing::{get, post};
use axum::Router;

pub use config::Config;
pub use error::{ConfigError, ProxyError};
pub use state::AppState;

/// The router: vendor routes, guard endpoints, health and metrics.
pub fn app(state: Arc<AppState>) -> Router {
    Router::new()
        .route("/v1/chat/completions", post(routes::openai::chat))
        .route("/v1/responses", post(routes::openai::responses))
        .route("/v1/embeddings", post(routes::openai::embeddings))
        .route("/v1/models", get(routes::openai::models))
        .route("/v1/models/{id}", get(routes::openai::model))
        .route("/v1/messages", post(routes::anthropic::messages))
        .route("/v1/guard/scan", post(routes::guard::scan))
        .route("/v1/guard/check-call", post(routes::guard::check_call))
        .route("/v1/guard/approvals/{id}", post(routes::guard::approval))
        .route("/v1/guard/holds/{id}/{action}", post(routes::guard::hold))
        .route("/healthz", get(routes::healthz))
        .route("/readyz", get(routes::readyz))
        .route("/metrics", get(routes::metrics))
        // Bodies are read by our own capped reader; lift axum's 2 MB default.
        .layer(axum::extract::DefaultBodyLimit::disable())
        .with_state(state)
}

/// Refuse to start when bound to a non-loopback address without authentication.
///
/// # Errors
/// [`ConfigError::Invalid`] naming the problem.
pub fn check_bind(cfg: &Config) -> Result<(), ConfigError> {
    if !cfg.auth_configured() && !cfg.listen.ip().is_loopback() {
        return Err(ConfigError::Invalid(format!(
            "refusing to listen on {} without authentication: configure [auth] or bind to a loopback address",
            cfg.listen
        )));
    }
    Ok(())
}

/// Serve `state` on `listener` until `shutdown` resolves, then drain in-flight
/// requests and streams (up to `limits.shutdown_grace_ms`) and flush the audit log.
/// Uses TLS 1.3 when `[tls]` is configured.
///
/// # Errors
/// TLS configuration or listener errors.
pub async fn serve(
    state: Arc<AppState>,
    listener: std::net::TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServeError> {
    listener.set_nonblocking(true)?;
    if !state.cfg.auth_configured() {
        let addr = listener.local_addr()?;
        if !addr.ip().is_loopback() {
            return Err(ServeError::Config(ConfigError::Invalid(format!(
                "refusing to listen on {addr} without authentication"
            ))));
        }
        tracing::warn!(
            event = "anonymous_mode",
            "no authentication configured: accepting loopback requests as principal `anonymous` (role support_agent)"
        );
    }
    let grace = Duration::from_millis(state.cfg.limits.shutdown_grace_ms);
    let router = app(state.clone());
    let handle = axum_server::Handle::new();
    let h = handle.clone();
    tokio::spawn(async move {
        shutdown.await;
        tracing::info!(event = "shutdown", "draining in-flight requests");
        h.graceful_shutdown(Some(grace));
    });
    let svc = router.into_make_service();
    // TCP_NODELAY: streamed tokens must not wait for delayed ACKs.
    let nodelay = axum_server::accept::NoDelayAcceptor::new();
    match &state.cfg.tls {
        Some(tls) => {
            let cfg = tls_config(&tls.cert, &tls.key)?;
            let acceptor = axum_server::tls_rustls::RustlsAcceptor::new(
                axum_server::tls_rustls::RustlsConfig::from_config(cfg),
            )
            .acceptor(nodelay);
            axum_server::from_tcp(listener)
                .acceptor(acceptor)
                .handle(handle)
                .serve(svc)
                .await?;
        }
        None => {
            axum_server::from_tcp(listener)
                .acceptor(nodelay)
                .handle(handle)
                .serve(svc)
                .await?;
        }
    }
    if let Err(e) = state.audit.sync() {
        tracing::error!(event = "audit_sync_failed", error = %e, "audit log could not be synced");
    }
    Ok(())
}

/// A rustls server config: TLS 1.3 only, ring provider, HTTP/2 and HTTP/1.1.
///
/// # Errors
/// Unreadable or invalid certificate or key.
pub fn tls_config(
    cert: &std::path::Path,
    key: &std::path::Path,
) -> Result<Arc<rustls::ServerConfig>, ServeError> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let bad = |what: &str, p: &std::path::Path| {
        ServeError::Tls(format!("{}: invalid {what}", p.display()))
    };
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
        .map_err(|_| bad("certificate file", cert))?
        .collect::<Result<_, _>>()
        .map_err(|_| bad("certificate", cert))?;
    if certs.is_empty() {
        return Err(bad("certificate (none found)", cert));
    }
    let key = PrivateKeyDer::from_pem_file(key).map_err(|_| bad("private key", key))?;
    let mut cfg = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_protocol_versions(&[&rustls::version::TLS13])
    .map_err(|e| ServeError::Tls(e.to_string()))?
    .with_no_client_auth()
    .with_single_cert(certs, key)
    .map_err(|e| ServeError::Tls(e.to_string()))?;
    cfg.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(cfg))
}

/// Errors from [`serve`].
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// Bad configuration.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// TLS setup failed.
    #[error("tls: {0}")]
    Tls(String),
    /// Listener I/O.
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

/// Build state, bind `cfg.listen` and serve until `shutdown` resolves.
///
/// # Errors
/// Anything that stops the server from starting.
pub async fn run(
    cfg: Config,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServeError> {
    check_bind(&cfg)?;
    let listen = cfg.listen;
    let state = AppState::build(cfg).await?;
    let listener = std::net::TcpListener::bind(listen).map_err(|e| {
        ServeError::Io(std::io::Error::new(
            e.kind(),
            format!("cannot listen on {listen}: {e}"),
        ))
    })?;
    // The bound address, so that `--listen 127.0.0.1:0` tells its port.
    let addr = listener.local_addr().unwrap_or(listen);
    tracing::info!(
        event = "listening",
        addr = %addr,
        tls = state.cfg.tls.is_some(),
        store = state.store.kind(),
        "warden serve listening"
    );
    for (name, up) in [("openai", &state.openai), ("anthropic", &state.anthropic)] {
        if !up.has_key() {
            tracing::warn!(
                event = "no_vendor_key",
                upstream = name,
                "no vendor key configured; requests to this upstream will fail"
            );
        }
    }
    serve(state, listener, shutdown).await?;
    tracing::info!(event = "stopped", "warden serve stopped");
    Ok(())
}

/// Install JSON logging to stderr (`RUST_LOG` filters; default `info`).
/// Log lines carry request ids and never detected values or prompt text.
pub fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    // The stock JSON format with the current span and no span list (the request span
    // is the only span: the list would repeat it in every line), written without
    // serde in between; see `logline`.
    //
    // A log line that cannot be written (stderr a closed pipe: the log
    // collector went away) is dropped. tracing-subscriber would report it with
    // `eprintln!`, which panics on that same stderr: in the task that handles
    // SIGTERM, the panic left the server running forever.
    let _ = tracing_subscriber::fmt()
        .json()
        .with_env_filter(filter)
        .log_internal_errors(false)
        .with_writer(std::io::stderr)
        .event_format(logline::JsonLines::default())
        .try_init();
}

/// Resolves on SIGINT or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn public_types_are_send_sync() {
        fn ok<T: Send + Sync>() {}
        ok::<AppState>();
        ok::<Config>();
        ok::<ProxyError>();
    }

    #[test]
    fn non_loopback_without_auth_is_refused() {
        let mut cfg = Config {
            listen: "0.0.0.0:8080".parse().unwrap(),
            ..Config::default()
        };
        assert!(check_bind(&cfg).is_err());
        cfg.listen = "127.0.0.1:8080".parse().unwrap();
        assert!(check_bind(&cfg).is_ok());
    }
}
