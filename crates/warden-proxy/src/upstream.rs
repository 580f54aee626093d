//! Vendor endpoints and their keys. A key comes from an environment variable
//! or a file (re-read when the file changes, so rotation needs no restart);
//! never from the client, never logged.

use std::path::PathBuf;
use std::sync::{Arc, Mutex, RwLock};
use std::time::SystemTime;

use http::HeaderValue;

use crate::config::UpstreamConfig;
use crate::error::ProxyError;

/// A vendor key with its header values, built once per key rather than per request.
pub struct Credential {
    /// The key itself.
    pub key: String,
    /// `Bearer <key>` (OpenAI `Authorization`), marked sensitive.
    pub bearer: HeaderValue,
    /// The key as a header value (Anthropic `x-api-key`), marked sensitive.
    pub raw: HeaderValue,
}

impl Credential {
    fn new(key: String) -> Result<Arc<Credential>, ProxyError> {
        let value = |v: &str| {
            let mut v = HeaderValue::from_str(v).map_err(|_| {
                ProxyError::Internal("vendor key is not a valid header value".into())
            })?;
            v.set_sensitive(true);
            Ok::<_, ProxyError>(v)
        };
        Ok(Arc::new(Credential {
            bearer: value(&format!("Bearer {key}"))?,
            raw: value(&key)?,
            key,
        }))
    }
}

enum KeySource {
    None,
    /// `None`: the variable's value cannot be sent as a header.
    Env(Option<Arc<Credential>>),
    File {
        path: PathBuf,
        cache: Mutex<Option<(SystemTime, u64, Arc<Credential>)>>,
    },
}

/// One vendor.
pub struct Upstream {
    /// Base URL without trailing slash.
    pub base_url: String,
    key: KeySource,
    /// Parsed URLs of the routes forwarded so far (a handful of static paths).
    urls: RwLock<Vec<(&'static str, reqwest::Url)>>,
}

impl std::fmt::Debug for Upstream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The key is deliberately absent.
        f.debug_struct("Upstream")
            .field("base_url", &self.base_url)
            .finish_non_exhaustive()
    }
}

impl Upstream {
    /// Build from config (reads the environment now; files lazily).
    pub fn new(cfg: &UpstreamConfig) -> Upstream {
        let key = if let Some(path) = &cfg.key_file {
            KeySource::File {
                path: path.clone(),
                cache: Mutex::new(None),
            }
        } else if let Some(var) = &cfg.key_env {
            match std::env::var(var) {
                Ok(v) if !v.trim().is_empty() => {
                    KeySource::Env(Credential::new(v.trim().to_string()).ok())
                }
                _ => KeySource::None,
            }
        } else {
            KeySource::None
        };
        Upstream {
            base_url: cfg.base_url.trim_end_matches('/').to_string(),
            key,
            urls: RwLock::new(Vec::new()),
        }
    }

    /// The URL of `path` on this vendor, parsed once per path and then cloned.
    /// `None` when it does not parse (the caller then lets the client report it).
    pub fn url(&self, path: &'static str) -> Option<reqwest::Url> {
        if let Ok(urls) = self.urls.read() {
            if let Some((_, u)) = urls.iter().find(|(p, _)| *p == path) {
                return Some(u.clone());
            }
        }
        let u = reqwest::Url::parse(&format!("{}{path}", self.base_url)).ok()?;
        if let Ok(mut urls) = self.urls.write() {
            if !urls.iter().any(|(p, _)| *p == path) {
                urls.push((path, u.clone()));
            }
        }
        Some(u)
    }

    /// Whether a key source is configured.
    pub fn has_key(&self) -> bool {
        !matches!(self.key, KeySource::None)
    }

    /// The current key. A key file is re-read when its modification time or size changes.
    ///
    /// # Errors
    /// No key configured, or the key file cannot be read.
    pub fn key(&self) -> Result<String, ProxyError> {
        self.credential().map(|c| c.key.clone())
    }

    /// The current key and its header values (see [`key`](Upstream::key)).
    ///
    /// # Errors
    /// No key configured, the key file cannot be read, or the key cannot be a header value.
    pub fn credential(&self) -> Result<Arc<Credential>, ProxyError> {
        match &self.key {
            KeySource::None => Err(ProxyError::Internal(
                "no vendor key configured for this upstream".into(),
            )),
            KeySource::Env(c) => c.clone().ok_or_else(|| {
                ProxyError::Internal("vendor key is not a valid header value".into())
            }),
            KeySource::File { path, cache } => {
                let meta = std::fs::metadata(path)
                    .map_err(|_| ProxyError::Internal("vendor key file unreadable".into()))?;
                let stamp = (
                    meta.modified().unwrap_or(SystemTime::UNIX_EPOCH),
                    meta.len(),
                );
                let mut c = cache
                    .lock()
                    .map_err(|_| ProxyError::Internal("key cache poisoned".into()))?;
                if let Some((t, n, k)) = c.as_ref() {
                    if (*t, *n) == stamp {
                        return Ok(k.clone());
                    }
                }
                let k = std::fs::read_to_string(path)
                    .map_err(|_| ProxyError::Internal("vendor key file unreadable".into()))?;
                let k = k.trim().to_string();
                if k.is_empty() {
                    return Err(ProxyError::Internal("vendor key file is empty".into()));
                }
                let k = Credential::new(k)?;
                tracing::info!(
                    event = "vendor_key_loaded",
                    "vendor key (re)loaded from file"
                );
                *c = Some((stamp.0, stamp.1, k.clone()));
                Ok(k)
            }
        }
    }
}
