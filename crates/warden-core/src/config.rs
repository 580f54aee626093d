//! Scanner and redaction settings, as embedded in the CLI, proxy and Python
//! configuration. Every field has a default, so `{}` is a valid config.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Settings applied by a [`Scanner`](crate::Scanner) on top of its packs.
///
/// # Example
/// ```
/// use warden_core::ScanConfig;
/// let cfg: ScanConfig = toml::from_str(r#"
///     min_score = 0.5
///     disabled_entities = ["PERSON"]
///     allow = [{ value = "support@acme.test" }, { regex = "@acme\\.test$", entity = "EMAIL" }]
///     deny = [{ value = "Project Bluebird", entity = "CODENAME" }]
/// "#).unwrap();
/// assert_eq!(cfg.allow.len(), 2);
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ScanConfig {
    /// Findings scoring below this are dropped. Default `0.3`.
    pub min_score: f32,
    /// Rule ids to switch off, e.g. `["pii.person.name_list"]`.
    pub disabled_rules: Vec<String>,
    /// Entity types to switch off, e.g. `["PERSON", "STREET_ADDRESS"]`.
    pub disabled_entities: Vec<String>,
    /// Values that are never reported (exact or regex; optionally for one entity).
    pub allow: Vec<ListEntry>,
    /// Values that are always reported (exact or regex) with the entry's entity
    /// (default `DENY_LIST`) and score 1.0.
    pub deny: Vec<ListEntry>,
    /// Decode percent-encoding, JSON `\uXXXX` escapes and HTML entities and
    /// rescan the decoded view. Default `true`.
    pub decode: bool,
    /// How findings are redacted.
    pub redact: RedactConfig,
}

impl Default for ScanConfig {
    fn default() -> Self {
        ScanConfig {
            min_score: 0.3,
            disabled_rules: Vec::new(),
            disabled_entities: Vec::new(),
            allow: Vec::new(),
            deny: Vec::new(),
            decode: true,
            redact: RedactConfig::default(),
        }
    }
}

/// One allow-list, deny-list or exclusion entry: an exact value or a regex,
/// optionally limited to one entity type.
///
/// Exactly one of `value` and `regex` must be set (checked when the scanner is
/// built). A regex entry matches when it finds a match anywhere in the
/// candidate value (anchor it with `^…$` for a full match).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ListEntry {
    /// Exact value (compared byte for byte with the normalised match).
    pub value: Option<String>,
    /// Regular expression (linear-time `regex` syntax).
    pub regex: Option<String>,
    /// Entity type the entry applies to (allow) or reports (deny).
    pub entity: Option<String>,
}

impl ListEntry {
    /// An exact-value entry for any entity.
    pub fn exact(value: impl Into<String>) -> ListEntry {
        ListEntry {
            value: Some(value.into()),
            ..ListEntry::default()
        }
    }

    /// A regex entry for any entity.
    pub fn regex(regex: impl Into<String>) -> ListEntry {
        ListEntry {
            regex: Some(regex.into()),
            ..ListEntry::default()
        }
    }

    /// Limit the entry to (or, for deny lists, report it as) `entity`.
    pub fn for_entity(mut self, entity: impl Into<String>) -> ListEntry {
        self.entity = Some(entity.into());
        self
    }
}

/// How a finding's text is replaced.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Strategy {
    /// A typed, numbered token such as `<EMAIL_1>`, reversible through a vault.
    #[default]
    Placeholder,
    /// Keep the last N characters, mask the rest (`**** **** **** 4242`).
    Mask,
    /// Keyed HMAC-SHA256 token, stable across calls with the same key.
    Hash,
    /// Delete the value.
    Remove,
}

/// Redaction settings: a default strategy plus per-entity overrides.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RedactConfig {
    /// Strategy for entity types not listed in `per_entity`.
    pub default: Strategy,
    /// Strategy per entity type, e.g. `{ CREDIT_CARD = "mask" }`.
    pub per_entity: BTreeMap<String, Strategy>,
    /// Characters kept in clear by [`Strategy::Mask`]. Default 4. Credentials
    /// (`API_KEY`, `PRIVATE_KEY`, `JWT`, `PASSWORD_IN_URL`) are always masked
    /// whole.
    pub mask_keep_last: usize,
}

impl Default for RedactConfig {
    fn default() -> Self {
        RedactConfig {
            default: Strategy::Placeholder,
            per_entity: BTreeMap::new(),
            mask_keep_last: 4,
        }
    }
}

impl RedactConfig {
    /// The strategy for `entity`.
    pub fn strategy_for(&self, entity: &str) -> Strategy {
        self.per_entity.get(entity).copied().unwrap_or(self.default)
    }
}
