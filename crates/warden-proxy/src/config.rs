//! The proxy's configuration: a TOML file in which every field has a default.
//!
//! `warden.example.toml` at the repository root documents every field. The
//! config is read and validated before any port is bound; validation errors
//! name the field, never the value (it may be a secret).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::error::ConfigError;

/// Top-level proxy configuration.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Address to listen on. Default `127.0.0.1:8080`.
    pub listen: SocketAddr,
    /// Upstream vendors.
    pub upstream: Upstreams,
    /// What to do with each detected entity type.
    pub entities: EntitiesConfig,
    /// Prompt-injection thresholds per source.
    pub injection: InjectionConfig,
    /// Tool-call policy.
    pub policy: PolicyConfig,
    /// Audit log.
    pub audit: AuditConfig,
    /// Request limits and timeouts.
    pub limits: LimitsConfig,
    /// Caller authentication. Empty means anonymous (loopback only).
    pub auth: AuthConfig,
    /// Optional TLS listener.
    pub tls: Option<TlsConfig>,
    /// Vault and rate-limit store.
    pub store: StoreConfig,
    /// Pattern packs directory (in addition to the built-in packs).
    pub packs: Option<PathBuf>,
    /// Cache of guard results for resent conversation turns.
    pub cache: CacheConfig,
}

/// The guard-result cache (see [`crate::cache`]).
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CacheConfig {
    /// Results kept (scan and injection each); 0 turns the cache off.
    pub entries: usize,
}

impl Default for CacheConfig {
    fn default() -> Self {
        CacheConfig { entries: 4096 }
    }
}

impl Default for Config {
    fn default() -> Self {
        Config {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            upstream: Upstreams::default(),
            entities: EntitiesConfig::default(),
            injection: InjectionConfig::default(),
            policy: PolicyConfig::default(),
            audit: AuditConfig::default(),
            limits: LimitsConfig::default(),
            auth: AuthConfig::default(),
            tls: None,
            store: StoreConfig::default(),
            packs: None,
            cache: CacheConfig::default(),
        }
    }
}

impl Config {
    /// Read and validate a config file.
    ///
    /// # Errors
    /// I/O errors, TOML syntax errors (with the location) and invalid values.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let src = std::fs::read_to_string(path).map_err(|e| ConfigError::Io {
            path: path.display().to_string(),
            source: e,
        })?;
        Config::parse(&src, &path.display().to_string())
    }

    /// Parse and validate config text; `origin` names it in errors.
    ///
    /// # Errors
    /// TOML syntax errors and invalid values.
    pub fn parse(src: &str, origin: &str) -> Result<Config, ConfigError> {
        let cfg: Config = toml::from_str(src).map_err(|e| ConfigError::Parse {
            origin: origin.to_string(),
            message: e.message().to_string(),
            span: e.span().map(|s| line_of(src, s.start)),
        })?;
        cfg.validate()?;
        Ok(cfg)
    }

    /// Check cross-field invariants.
    ///
    /// # Errors
    /// The first invalid field found.
    pub fn validate(&self) -> Result<(), ConfigError> {
        for (name, up) in [
            ("upstream.openai", &self.upstream.openai),
            ("upstream.anthropic", &self.upstream.anthropic),
        ] {
            if !(up.base_url.starts_with("http://") || up.base_url.starts_with("https://")) {
                return Err(ConfigError::Invalid(format!(
                    "{name}.base_url must start with http:// or https://"
                )));
            }
        }
        for (i, k) in self.auth.api_keys.iter().enumerate() {
            if k.sha256.len() != 64 || hex::decode(&k.sha256).is_err() {
                return Err(ConfigError::Invalid(format!(
                    "auth.api_keys[{i}].sha256 must be 64 hex digits"
                )));
            }
        }
        if let Some(jwt) = &self.auth.jwt {
            if jwt.issuer.is_empty() {
                return Err(ConfigError::Invalid(
                    "auth.jwt.issuer must not be empty".into(),
                ));
            }
            if jwt.algorithms.is_empty() {
                return Err(ConfigError::Invalid(
                    "auth.jwt.algorithms must not be empty".into(),
                ));
            }
            for alg in &jwt.algorithms {
                if crate::auth::parse_alg(alg).is_none() {
                    return Err(ConfigError::Invalid(format!(
                        "auth.jwt.algorithms: unsupported algorithm {alg:?}"
                    )));
                }
            }
        }
        for (k, v) in &self.injection.thresholds {
            if !(0.0..=1.0).contains(&v.flag) || !(0.0..=1.0).contains(&v.block) || v.flag > v.block
            {
                return Err(ConfigError::Invalid(format!(
                    "injection.thresholds.{k}: need 0 <= flag <= block <= 1"
                )));
            }
        }
        if self.limits.max_body_bytes == 0 || self.limits.max_json_depth == 0 {
            return Err(ConfigError::Invalid(
                "limits.max_body_bytes and limits.max_json_depth must be > 0".into(),
            ));
        }
        Ok(())
    }

    /// True when any caller authentication is configured.
    pub fn auth_configured(&self) -> bool {
        !self.auth.api_keys.is_empty() || self.auth.jwt.is_some()
    }
}

fn line_of(src: &str, byte: usize) -> usize {
    src.as_bytes()
        .iter()
        .take(byte)
        .filter(|&&b| b == b'\n')
        .count()
        + 1
}

/// The upstream for each wire format.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Upstreams {
    /// OpenAI (Chat Completions, Responses, Embeddings, Models).
    pub openai: UpstreamConfig,
    /// Anthropic (Messages).
    pub anthropic: UpstreamConfig,
}

impl Default for Upstreams {
    fn default() -> Self {
        Upstreams {
            openai: UpstreamConfig {
                base_url: "https://api.openai.com".into(),
                key_env: Some("OPENAI_API_KEY".into()),
                key_file: None,
            },
            anthropic: UpstreamConfig {
                base_url: "https://api.anthropic.com".into(),
                key_env: Some("ANTHROPIC_API_KEY".into()),
                key_file: None,
            },
        }
    }
}

/// One vendor: where it is and where its key comes from (never from the client).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpstreamConfig {
    /// Base URL without the `/v1` suffix, e.g. `https://api.openai.com`.
    pub base_url: String,
    /// Environment variable holding the key.
    #[serde(default)]
    pub key_env: Option<String>,
    /// File holding the key (re-read when it changes; wins over `key_env`).
    #[serde(default)]
    pub key_file: Option<PathBuf>,
}

/// What to do with a detected entity.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EntityAction {
    /// Replace with a placeholder and restore it in the response.
    Redact,
    /// Refuse the whole request.
    Block,
    /// Leave in place, do not count.
    Allow,
    /// Leave in place, count it in metrics and audit.
    Log,
}

impl EntityAction {
    /// Lower-case name, as in the config and the metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            EntityAction::Redact => "redact",
            EntityAction::Block => "block",
            EntityAction::Allow => "allow",
            EntityAction::Log => "log",
        }
    }
}

/// Per-entity actions.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EntitiesConfig {
    /// Action for entity types not listed in `actions`.
    pub default: EntityAction,
    /// Action per entity type, e.g. `PRIVATE_KEY = "block"`.
    pub actions: BTreeMap<String, EntityAction>,
    /// Minimum finding score to act on.
    pub min_score: f32,
}

impl Default for EntitiesConfig {
    fn default() -> Self {
        let mut actions = BTreeMap::new();
        actions.insert("PRIVATE_KEY".to_string(), EntityAction::Block);
        EntitiesConfig {
            default: EntityAction::Redact,
            actions,
            min_score: 0.0,
        }
    }
}

impl EntitiesConfig {
    /// The action for one entity type.
    pub fn action(&self, entity: &str) -> EntityAction {
        self.actions.get(entity).copied().unwrap_or(self.default)
    }
}

/// Flag/block thresholds for one source.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Threshold {
    /// Score at or above which the text is flagged (recorded, forwarded).
    pub flag: f32,
    /// Score at or above which the request is blocked.
    pub block: f32,
}

/// Injection handling.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct InjectionConfig {
    /// Turn injection scoring off entirely (audit records say `not_scanned`).
    pub enabled: bool,
    /// Thresholds per source: `user`, `system`, `tool`, `document`. Untrusted
    /// sources (tool results, documents) default stricter.
    pub thresholds: BTreeMap<String, Threshold>,
}

impl Default for InjectionConfig {
    fn default() -> Self {
        let mut thresholds = BTreeMap::new();
        thresholds.insert(
            "user".into(),
            Threshold {
                flag: 0.5,
                block: 0.8,
            },
        );
        thresholds.insert(
            "system".into(),
            Threshold {
                flag: 0.8,
                block: 0.97,
            },
        );
        thresholds.insert(
            "tool".into(),
            Threshold {
                flag: 0.35,
                block: 0.65,
            },
        );
        thresholds.insert(
            "document".into(),
            Threshold {
                flag: 0.35,
                block: 0.65,
            },
        );
        InjectionConfig {
            enabled: true,
            thresholds,
        }
    }
}

/// Tool-call policy.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PolicyConfig {
    /// Policy file; the built-in demo policy and ledger when absent.
    pub file: Option<PathBuf>,
    /// State store for holds, idempotency and approvals (`sqlite:PATH` or
    /// `postgres://…`), overriding the policy file's.
    pub state_url: Option<String>,
    /// Roles allowed to decide approval requests via `/v1/guard/approvals/{id}`.
    #[serde(default = "default_approvers")]
    pub approver_roles: Vec<String>,
}

impl Default for PolicyConfig {
    fn default() -> Self {
        PolicyConfig {
            file: None,
            state_url: None,
            approver_roles: default_approvers(),
        }
    }
}

fn default_approvers() -> Vec<String> {
    vec!["approver".into()]
}

/// Audit log.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AuditConfig {
    /// Hash-chained JSON Lines file.
    pub path: PathBuf,
    /// `fsync` after every record (slower; survives a power cut). Otherwise the
    /// log is synced at shutdown.
    pub fsync: bool,
}

impl Default for AuditConfig {
    fn default() -> Self {
        AuditConfig {
            path: PathBuf::from("warden-audit.jsonl"),
            fsync: false,
        }
    }
}

/// Limits and timeouts.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LimitsConfig {
    /// Largest accepted request body.
    pub max_body_bytes: usize,
    /// Deepest accepted JSON nesting.
    pub max_json_depth: usize,
    /// Requests per minute per principal (0 = unlimited).
    pub requests_per_minute: u64,
    /// Estimated tokens per minute per principal (0 = unlimited).
    pub tokens_per_minute: u64,
    /// Upstream connect timeout.
    pub connect_timeout_ms: u64,
    /// Upstream read timeout (between bytes).
    pub read_timeout_ms: u64,
    /// Largest single SSE event accepted from the vendor (the stream fails past it).
    pub max_stream_buffer_bytes: usize,
    /// Largest tool-call arguments held for validation in one stream; a larger
    /// call is denied (`warden.arguments_too_large`).
    pub max_tool_call_bytes: usize,
    /// Bodies larger than this are scanned on the blocking pool.
    pub blocking_scan_threshold_bytes: usize,
    /// How long graceful shutdown waits for in-flight requests and streams.
    pub shutdown_grace_ms: u64,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        LimitsConfig {
            max_body_bytes: 4 * 1024 * 1024,
            max_json_depth: 64,
            requests_per_minute: 600,
            tokens_per_minute: 1_000_000,
            connect_timeout_ms: 5_000,
            read_timeout_ms: 120_000,
            max_stream_buffer_bytes: 1024 * 1024,
            max_tool_call_bytes: 256 * 1024,
            blocking_scan_threshold_bytes: 64 * 1024,
            shutdown_grace_ms: 30_000,
        }
    }
}

/// Caller authentication.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AuthConfig {
    /// Static API keys (development), stored as SHA-256 hashes.
    pub api_keys: Vec<ApiKeyConfig>,
    /// OIDC JWT verification.
    pub jwt: Option<JwtConfig>,
    /// Roles allowed to use the proxy at all (empty: any authenticated caller).
    /// A caller with none of them gets 403.
    pub allowed_roles: Vec<String>,
}

/// One static API key.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApiKeyConfig {
    /// Principal id for this key.
    pub name: String,
    /// Lower-case hex SHA-256 of the key (`printf %s KEY | sha256sum`).
    pub sha256: String,
    /// Policy roles.
    #[serde(default)]
    pub roles: Vec<String>,
    /// Whether this principal counts as MFA-authenticated.
    #[serde(default)]
    pub mfa: bool,
}

/// JWT verification against an OIDC issuer.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JwtConfig {
    /// Expected `iss`.
    pub issuer: String,
    /// Expected `aud`.
    pub audience: String,
    /// JWKS URL; default `<issuer>/.well-known/jwks.json` via OIDC discovery.
    #[serde(default)]
    pub jwks_url: Option<String>,
    /// Accepted `alg` values.
    #[serde(default = "default_algs")]
    pub algorithms: Vec<String>,
    /// Claim holding the roles (array or space-separated string).
    #[serde(default = "default_roles_claim")]
    pub roles_claim: String,
    /// How long fetched keys are trusted before a refresh.
    #[serde(default = "default_jwks_refresh")]
    pub refresh_secs: u64,
    /// Allowed clock skew.
    #[serde(default = "default_leeway")]
    pub leeway_secs: u64,
}

fn default_algs() -> Vec<String> {
    vec!["RS256".into(), "ES256".into(), "EdDSA".into()]
}
fn default_roles_claim() -> String {
    "roles".into()
}
fn default_jwks_refresh() -> u64 {
    300
}
fn default_leeway() -> u64 {
    30
}

/// TLS listener (TLS 1.3 only).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    /// PEM certificate chain.
    pub cert: PathBuf,
    /// PEM private key.
    pub key: PathBuf,
}

/// Vault and counter store.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StoreConfig {
    /// `redis://host:port` to share vaults and rate-limit counters across replicas.
    pub redis_url: Option<String>,
    /// How long a conversation's vault is kept (for `previous_response_id`).
    pub vault_ttl_secs: u64,
    /// Environment variable holding the placeholder HMAC key, shared by
    /// replicas so tokens are stable across them. Random per process if unset.
    pub token_key_env: Option<String>,
}

impl Default for StoreConfig {
    fn default() -> Self {
        StoreConfig {
            redis_url: None,
            vault_ttl_secs: 3600,
            token_key_env: Some("WARDEN_TOKEN_KEY".into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_config_is_the_default() {
        let c = Config::parse("", "t").unwrap();
        assert_eq!(c.listen.to_string(), "127.0.0.1:8080");
        assert_eq!(c.entities.action("PRIVATE_KEY"), EntityAction::Block);
        assert_eq!(c.entities.action("EMAIL"), EntityAction::Redact);
    }

    #[test]
    fn example_config_parses() {
        let src = include_str!("../../../warden.example.toml");
        Config::parse(src, "warden.example.toml").unwrap();
    }

    #[test]
    fn bad_values_are_rejected_without_echoing_them() {
        let e = Config::parse(
            "[[auth.api_keys]]\nname='a'\nsha256='sk-live-secret'\n",
            "t",
        )
        .unwrap_err();
        assert!(!e.to_string().contains("sk-live-secret"), "{e}");
        let e = Config::parse("unknown_field = 1", "t").unwrap_err();
        assert!(e.to_string().contains("line 1"), "{e}");
    }
}
