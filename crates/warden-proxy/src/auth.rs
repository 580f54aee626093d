//! Caller authentication: static API keys (stored as SHA-256 hashes) and JWTs
//! verified against an OIDC issuer's JWKS (keys cached, refreshed on expiry and
//! on an unknown `kid`, at most once per 10 seconds).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::http::HeaderMap;
use jsonwebtoken::{jwk::JwkSet, Algorithm, DecodingKey, Validation};
use serde::Serialize;
use sha2::{Digest, Sha256};
use tokio::sync::RwLock;

use crate::config::{AuthConfig, JwtConfig};
use crate::error::ProxyError;

/// An authenticated caller.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Principal {
    /// Stable id (`sub` claim, API key name, or `anonymous`).
    pub id: String,
    /// Policy roles.
    pub roles: Vec<String>,
    /// Whether the caller authenticated with MFA (`amr` contains `mfa`).
    pub mfa: bool,
}

impl Principal {
    /// The principal used when no authentication is configured (loopback only).
    pub fn anonymous() -> Principal {
        Principal {
            id: "anonymous".into(),
            roles: vec!["support_agent".into()],
            mfa: false,
        }
    }
}

/// Map a configured algorithm name to `jsonwebtoken`'s.
pub fn parse_alg(s: &str) -> Option<Algorithm> {
    Some(match s {
        "RS256" => Algorithm::RS256,
        "RS384" => Algorithm::RS384,
        "RS512" => Algorithm::RS512,
        "PS256" => Algorithm::PS256,
        "PS384" => Algorithm::PS384,
        "PS512" => Algorithm::PS512,
        "ES256" => Algorithm::ES256,
        "ES384" => Algorithm::ES384,
        "EdDSA" => Algorithm::EdDSA,
        // HS* is refused on purpose: a shared secret in a JWKS is a misconfiguration.
        _ => return None,
    })
}

struct StaticKey {
    hash: [u8; 32],
    principal: Principal,
}

struct JwksCache {
    keys: HashMap<String, (Algorithm, DecodingKey)>,
    fetched: Option<Instant>,
}

struct Jwt {
    cfg: JwtConfig,
    algs: Vec<Algorithm>,
    cache: RwLock<JwksCache>,
}

/// Verifies bearer tokens.
pub struct Authenticator {
    keys: Vec<StaticKey>,
    jwt: Option<Jwt>,
    http: reqwest::Client,
}

impl Authenticator {
    /// Build from config.
    pub fn new(cfg: &AuthConfig, http: reqwest::Client) -> Authenticator {
        let keys = cfg
            .api_keys
            .iter()
            .filter_map(|k| {
                let mut hash = [0u8; 32];
                hex::decode_to_slice(&k.sha256, &mut hash).ok()?;
                Some(StaticKey {
                    hash,
                    principal: Principal {
                        id: k.name.clone(),
                        roles: k.roles.clone(),
                        mfa: k.mfa,
                    },
                })
            })
            .collect();
        let jwt = cfg.jwt.as_ref().map(|j| Jwt {
            cfg: j.clone(),
            algs: j.algorithms.iter().filter_map(|a| parse_alg(a)).collect(),
            cache: RwLock::new(JwksCache {
                keys: HashMap::new(),
                fetched: None,
            }),
        });
        Authenticator { keys, jwt, http }
    }

    /// True when no authentication is configured (anonymous mode).
    pub fn is_anonymous(&self) -> bool {
        self.keys.is_empty() && self.jwt.is_none()
    }

    /// Authenticate a request from its headers (`Authorization: Bearer` or `x-api-key`).
    ///
    /// # Errors
    /// [`ProxyError::Unauthenticated`] with a reason that never echoes the token.
    pub async fn authenticate(&self, headers: &HeaderMap) -> Result<Principal, ProxyError> {
        if self.is_anonymous() {
            return Ok(Principal::anonymous());
        }
        let token = bearer(headers)
            .ok_or_else(|| ProxyError::Unauthenticated("missing bearer token".into()))?;
        if token.matches('.').count() == 2 {
            if let Some(jwt) = &self.jwt {
                return jwt.verify(token, &self.http).await;
            }
        }
        let digest: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        // Every key is compared in full so timing does not reveal which prefix matched.
        let mut found = None;
        for k in &self.keys {
            let diff = k
                .hash
                .iter()
                .zip(digest.iter())
                .fold(0u8, |acc, (a, b)| acc | (a ^ b));
            if diff == 0 {
                found = Some(k.principal.clone());
            }
        }
        found.ok_or_else(|| ProxyError::Unauthenticated("invalid API key".into()))
    }
}

fn bearer(headers: &HeaderMap) -> Option<&str> {
    if let Some(v) = headers
        .get(http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
    {
        let v = v.trim();
        if v.len() > 7 && v[..7].eq_ignore_ascii_case("bearer ") {
            return Some(v[7..].trim());
        }
    }
    headers
        .get("x-api-key")
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|s| !s.is_empty())
}

impl Jwt {
    async fn verify(&self, token: &str, http: &reqwest::Client) -> Result<Principal, ProxyError> {
        let bad = |m: &str| ProxyError::Unauthenticated(m.to_string());
        let header = jsonwebtoken::decode_header(token).map_err(|_| bad("malformed JWT"))?;
        if !self.algs.contains(&header.alg) {
            return Err(bad("JWT algorithm not allowed"));
        }
        let kid = header.kid.clone().unwrap_or_default();
        let key = match self.lookup(&kid).await {
            Some(k) => Some(k),
            None => {
                self.refresh(http, true).await?;
                self.lookup(&kid).await
            }
        };
        let (alg, key) = key.ok_or_else(|| bad("unknown JWT key id"))?;
        if alg != header.alg {
            return Err(bad("JWT algorithm does not match its key"));
        }
        let mut v = Validation::new(alg);
        v.set_issuer(&[&self.cfg.issuer]);
        v.set_audience(&[&self.cfg.audience]);
        v.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        v.leeway = self.cfg.leeway_secs;
        let data = jsonwebtoken::decode::<serde_json::Value>(token, &key, &v).map_err(|e| {
            use jsonwebtoken::errors::ErrorKind as K;
            match e.kind() {
                K::ExpiredSignature => bad("JWT expired"),
                K::InvalidIssuer => bad("JWT issuer mismatch"),
                K::InvalidAudience => bad("JWT audience mismatch"),
                K::InvalidSignature => bad("JWT signature invalid"),
                K::MissingRequiredClaim(_) => bad("JWT missing a required claim"),
                _ => bad("JWT invalid"),
            }
        })?;
        let c = &data.claims;
        let id = c
            .get("sub")
            .and_then(|s| s.as_str())
            .unwrap_or_default()
            .to_string();
        let roles = match c.get(&self.cfg.roles_claim) {
            Some(serde_json::Value::Array(a)) => a
                .iter()
                .filter_map(|r| r.as_str().map(String::from))
                .collect(),
            Some(serde_json::Value::String(s)) => s.split_whitespace().map(String::from).collect(),
            _ => Vec::new(),
        };
        let mfa = c
            .get("amr")
            .and_then(|a| a.as_array())
            .is_some_and(|a| a.iter().any(|m| m.as_str() == Some("mfa")));
        Ok(Principal { id, roles, mfa })
    }

    async fn lookup(&self, kid: &str) -> Option<(Algorithm, DecodingKey)> {
        let cache = self.cache.read().await;
        let fresh = cache
            .fetched
            .is_some_and(|t| t.elapsed() < Duration::from_secs(self.cfg.refresh_secs));
        if !fresh {
            return None;
        }
        cache.keys.get(kid).cloned()
    }

    async fn refresh(&self, http: &reqwest::Client, on_miss: bool) -> Result<(), ProxyError> {
        let mut cache = self.cache.write().await;
        if let Some(t) = cache.fetched {
            let age = t.elapsed();
            // An unknown kid refreshes at most every 10 s, so random kids cannot hammer the issuer.
            if age < Duration::from_secs(self.cfg.refresh_secs)
                && (!on_miss || age < Duration::from_secs(10))
            {
                return Ok(());
            }
        }
        let url = match &self.cfg.jwks_url {
            Some(u) => u.clone(),
            None => discover(http, &self.cfg.issuer).await?,
        };
        let set: JwkSet = http
            .get(&url)
            .send()
            .await
            .and_then(|r| r.error_for_status())
            .map_err(|_| ProxyError::Unauthenticated("JWKS unavailable".into()))?
            .json()
            .await
            .map_err(|_| ProxyError::Unauthenticated("JWKS malformed".into()))?;
        let mut keys = HashMap::new();
        for jwk in &set.keys {
            let Some(alg) = jwk
                .common
                .key_algorithm
                .and_then(|a| parse_alg(&format!("{a:?}")))
            else {
                continue;
            };
            if let Ok(k) = DecodingKey::from_jwk(jwk) {
                keys.insert(jwk.common.key_id.clone().unwrap_or_default(), (alg, k));
            }
        }
        *cache = JwksCache {
            keys,
            fetched: Some(Instant::now()),
        };
        Ok(())
    }
}

async fn discover(http: &reqwest::Client, issuer: &str) -> Result<String, ProxyError> {
    let url = format!(
        "{}/.well-known/openid-configuration",
        issuer.trim_end_matches('/')
    );
    let doc: serde_json::Value = http
        .get(&url)
        .send()
        .await
        .and_then(|r| r.error_for_status())
        .map_err(|_| ProxyError::Unauthenticated("OIDC discovery unavailable".into()))?
        .json()
        .await
        .map_err(|_| ProxyError::Unauthenticated("OIDC discovery malformed".into()))?;
    doc.get("jwks_uri")
        .and_then(|u| u.as_str())
        .map(String::from)
        .ok_or_else(|| ProxyError::Unauthenticated("OIDC discovery has no jwks_uri".into()))
}

/// Shared handle.
pub type SharedAuth = Arc<Authenticator>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bearer_and_x_api_key() {
        let mut h = HeaderMap::new();
        h.insert("authorization", "Bearer abc".parse().unwrap());
        assert_eq!(bearer(&h), Some("abc"));
        let mut h = HeaderMap::new();
        h.insert("x-api-key", "xyz".parse().unwrap());
        assert_eq!(bearer(&h), Some("xyz"));
        assert_eq!(bearer(&HeaderMap::new()), None);
    }

    #[test]
    fn hs_algorithms_are_refused() {
        assert!(parse_alg("HS256").is_none());
        assert!(parse_alg("none").is_none());
        assert_eq!(parse_alg("EdDSA"), Some(Algorithm::EdDSA));
    }
}
