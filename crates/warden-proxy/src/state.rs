//! Shared application state, built once before any port is bound.

use std::sync::Arc;
use std::time::Duration;

use crate::auth::Authenticator;
use crate::config::Config;
use crate::engine::Engines;
use crate::error::ConfigError;
use crate::metrics::Metrics;
use crate::store::Store;
use crate::upstream::Upstream;

/// Everything a request handler needs. Cheap to share (`Arc<AppState>`).
pub struct AppState {
    /// The validated configuration.
    pub cfg: Config,
    /// Scanner, injection detector, tool policy.
    pub engines: Engines,
    /// Caller authentication.
    pub auth: Authenticator,
    /// Vaults and rate-limit counters.
    pub store: Store,
    /// Prometheus registry.
    pub metrics: Metrics,
    /// Hash-chained audit log.
    pub audit: Arc<warden_audit::AuditLog>,
    /// HTTP client for the vendors (rustls).
    pub http: reqwest::Client,
    /// OpenAI upstream.
    pub openai: Upstream,
    /// Anthropic upstream.
    pub anthropic: Upstream,
    /// HMAC key for placeholder tokens (stable across requests and, when
    /// configured, across replicas).
    pub token_key: Arc<Vec<u8>>,
}

impl AppState {
    /// Build state from config: load engines, open the audit log, connect the store.
    ///
    /// # Errors
    /// Anything that must stop the server from starting.
    pub async fn build(cfg: Config) -> Result<Arc<AppState>, ConfigError> {
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_millis(cfg.limits.connect_timeout_ms))
            .read_timeout(Duration::from_millis(cfg.limits.read_timeout_ms))
            .pool_max_idle_per_host(256)
            // A redirect from the vendor would re-send the (redacted) prompt, or an
            // identity-provider fetch, to a host nobody configured: never follow one.
            // The client gets the vendor's 3xx, without its `Location`, as it gets any
            // other answer that is not a success.
            .redirect(reqwest::redirect::Policy::none())
            .https_only(false)
            .build()
            .map_err(|e| ConfigError::Engine {
                what: "http client",
                message: e.to_string(),
            })?;
        let auth = Authenticator::new(&cfg.auth, http.clone());
        let store = match &cfg.store.redis_url {
            Some(url) => Store::redis(url).await.map_err(|e| ConfigError::Engine {
                what: "store",
                message: e.to_string(),
            })?,
            None => Store::memory(),
        };
        if let Some(parent) = cfg
            .audit
            .path
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
        {
            std::fs::create_dir_all(parent).map_err(|e| ConfigError::Io {
                path: parent.display().to_string(),
                source: e,
            })?;
        }
        let fsync = if cfg.audit.fsync {
            warden_audit::Fsync::Always
        } else {
            warden_audit::Fsync::Never
        };
        let audit = warden_audit::AuditLog::open(&cfg.audit.path, fsync).map_err(|e| {
            ConfigError::Engine {
                what: "audit",
                message: e.to_string(),
            }
        })?;
        let audit = Arc::new(audit);
        let engines = Engines::load(&cfg, Some(audit.clone()))?;
        let token_key = match cfg
            .store
            .token_key_env
            .as_deref()
            .and_then(|v| std::env::var(v).ok())
        {
            Some(k) if k.len() >= 16 => k.into_bytes(),
            Some(_) => {
                return Err(ConfigError::Invalid(
                    "store.token_key_env: key must be at least 16 bytes".into(),
                ))
            }
            None => uuid::Uuid::new_v4()
                .as_bytes()
                .iter()
                .chain(uuid::Uuid::new_v4().as_bytes())
                .copied()
                .collect(),
        };
        Ok(Arc::new(AppState {
            openai: Upstream::new(&cfg.upstream.openai),
            anthropic: Upstream::new(&cfg.upstream.anthropic),
            cfg,
            engines,
            auth,
            store,
            metrics: Metrics::default(),
            audit,
            http,
            token_key: Arc::new(token_key),
        }))
    }
}
