//! How one detected value is replaced: the `mask` and `hash` renderings, the
//! keyed digests behind keyed placeholders, and parsing strategy names.
//! ([`Strategy`] and [`RedactConfig`] themselves live in `config.rs`.)

use std::fmt;

use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::config::{RedactConfig, Strategy};
use crate::error::{Error, ErrorKind};

type HmacSha256 = Hmac<Sha256>;

/// Longest entity type kept in a token; longer names are truncated so every
/// token fits in [`MAX_TOKEN_LEN`] bytes and a streaming restorer can bound
/// what it holds back.
pub(crate) const MAX_TYPE_LEN: usize = 48;

/// Upper bound, in bytes, on the length of any placeholder token
/// (`<` + type + `_` + up to 20 digits + `>`).
///
/// A [`StreamRestorer`](crate::redact::StreamRestorer) never holds back more
/// than this many bytes of text.
pub const MAX_TOKEN_LEN: usize = 1 + MAX_TYPE_LEN + 1 + 20 + 1;

impl Strategy {
    /// The configuration name of the strategy.
    ///
    /// # Example
    /// ```
    /// assert_eq!(warden_core::Strategy::Remove.as_str(), "remove");
    /// ```
    pub fn as_str(self) -> &'static str {
        match self {
            Strategy::Placeholder => "placeholder",
            Strategy::Mask => "mask",
            Strategy::Hash => "hash",
            Strategy::Remove => "remove",
        }
    }
}

impl fmt::Display for Strategy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Parses `placeholder`, `mask`, `hash` or `remove` (for `--strategy`).
///
/// # Example
/// ```
/// use warden_core::Strategy;
/// assert_eq!("hash".parse::<Strategy>().unwrap(), Strategy::Hash);
/// assert!("encrypt".parse::<Strategy>().is_err());
/// ```
impl std::str::FromStr for Strategy {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "placeholder" => Ok(Strategy::Placeholder),
            "mask" => Ok(Strategy::Mask),
            "hash" => Ok(Strategy::Hash),
            "remove" => Ok(Strategy::Remove),
            // The name comes from a command line or config file, never from
            // scanned text, so echoing it back is safe.
            other => Err(Error::new(
                ErrorKind::Config,
                format!(
                    "unknown redaction strategy {:?} (expected placeholder, mask, hash or remove)",
                    other.chars().take(64).collect::<String>()
                ),
            )),
        }
    }
}

impl RedactConfig {
    /// A configuration that applies `strategy` to every entity type.
    ///
    /// # Example
    /// ```
    /// use warden_core::{RedactConfig, Strategy};
    /// let cfg = RedactConfig::uniform(Strategy::Hash);
    /// assert_eq!(cfg.strategy_for("EMAIL"), Strategy::Hash);
    /// ```
    pub fn uniform(strategy: Strategy) -> RedactConfig {
        RedactConfig {
            default: strategy,
            ..RedactConfig::default()
        }
    }
}

/// Maps an entity name onto the token grammar's `[A-Z][A-Z0-9_]*`, at most
/// [`MAX_TYPE_LEN`] bytes, so tokens always parse back.
pub(crate) fn token_type(entity: &str) -> String {
    let mut out = String::with_capacity(entity.len().min(MAX_TYPE_LEN));
    for c in entity.chars() {
        if out.len() >= MAX_TYPE_LEN {
            break;
        }
        let c = c.to_ascii_uppercase();
        if c.is_ascii_uppercase() || (c.is_ascii_digit() && !out.is_empty()) {
            out.push(c);
        } else if c.is_ascii_digit() {
            out.push('X');
            if out.len() < MAX_TYPE_LEN {
                out.push(c);
            }
        } else if out.is_empty() {
            out.push('X');
        } else {
            out.push('_');
        }
    }
    if out.is_empty() {
        out.push_str("ENTITY");
    }
    out
}

/// HMAC-SHA256 with its key already absorbed: each digest starts from a
/// copy of this state instead of hashing the key's pads again.
#[derive(Clone)]
pub(crate) struct KeyedMac(HmacSha256);

impl KeyedMac {
    pub(crate) fn new(key: &[u8]) -> KeyedMac {
        // HMAC accepts keys of any length, so this cannot fail.
        match HmacSha256::new_from_slice(key) {
            Ok(mac) => KeyedMac(mac),
            Err(_) => unreachable_hmac(),
        }
    }

    /// HMAC-SHA256 over `parts`, each followed by a 0 byte so that
    /// `("AB", "C")` and `("A", "BC")` differ.
    pub(crate) fn digest(&self, parts: &[&[u8]]) -> [u8; 32] {
        let mut mac = self.0.clone();
        for (i, part) in parts.iter().enumerate() {
            if i > 0 {
                mac.update(&[0]);
            }
            mac.update(part);
        }
        mac.finalize().into_bytes().into()
    }
}

#[cold]
fn unreachable_hmac() -> ! {
    // `Hmac::new_from_slice` only fails for fixed-size-key MACs; HMAC takes
    // any key length. Kept out of line so clippy's `unwrap` lint stays quiet
    // without hiding a real error path.
    panic!("HMAC-SHA256 rejected a key, which it never does")
}

const HEX: &[u8; 16] = b"0123456789abcdef";

pub(crate) fn push_hex(out: &mut String, bytes: &[u8]) {
    for b in bytes {
        out.push(HEX[usize::from(b >> 4)] as char);
        out.push(HEX[usize::from(b & 0xf)] as char);
    }
}

/// The `hash` strategy's token: `<TYPE#` + 12 hex digits + `>`.
pub(crate) fn hash_token(key: &KeyedMac, entity: &str, value: &str) -> String {
    let ty = token_type(entity);
    // Domain-separated from keyed placeholders so a hash token never reveals
    // a placeholder's digest and vice versa.
    let digest = key.digest(&[b"warden-hash", ty.as_bytes(), value.as_bytes()]);
    let mut out = String::with_capacity(ty.len() + 15);
    out.push('<');
    out.push_str(&ty);
    out.push('#');
    push_hex(&mut out, &digest[..6]);
    out.push('>');
    out
}

/// Entity types that are credentials. `mask` hides them whole: the last
/// characters of a key are still part of the key, and a key glued to the
/// next word can end in that word's first letters.
pub(crate) fn is_credential(entity: &str) -> bool {
    matches!(
        entity,
        "API_KEY" | "PRIVATE_KEY" | "JWT" | "PASSWORD_IN_URL"
    )
}

/// The `mask` strategy: letters and digits become `*` except the last
/// `keep_last` (never more than half of them); everything else stays.
/// A value without letters or digits is masked whole.
pub(crate) fn mask(value: &str, keep_last: usize) -> String {
    let alnum = value.chars().filter(|c| c.is_alphanumeric()).count();
    let mut out = String::with_capacity(value.len());
    if alnum == 0 {
        out.extend(value.chars().map(|_| '*'));
        return out;
    }
    let keep = keep_last.min(alnum / 2);
    let mut seen = 0usize;
    for c in value.chars() {
        if c.is_alphanumeric() {
            seen += 1;
            if seen > alnum - keep {
                out.push(c);
            } else {
                out.push('*');
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// A key that lives only as long as this process: used for `hash` when no
/// key is configured, so tokens are still unpredictable (a fixed key would
/// let anyone hash every 9-digit SSN and invert the tokens).
pub(crate) fn ephemeral_key() -> Vec<u8> {
    use std::collections::hash_map::RandomState;
    use std::hash::{BuildHasher, Hasher};
    let mut key = Vec::with_capacity(32);
    for i in 0u64..4 {
        let mut h = RandomState::new().build_hasher();
        h.write_u64(i);
        key.extend_from_slice(&h.finish().to_le_bytes());
    }
    key
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masks_cards_keeping_separators() {
        assert_eq!(mask("4242 4242 4242 4242", 4), "**** **** **** 4242");
        assert_eq!(mask("123-45-6789", 4), "***-**-6789");
        assert_eq!(mask("ab", 4), "*b");
        assert_eq!(mask("a", 4), "*");
        assert_eq!(mask("--", 4), "**");
    }

    #[test]
    fn token_types_follow_the_grammar() {
        assert_eq!(token_type("EMAIL"), "EMAIL");
        assert_eq!(token_type("us_ssn"), "US_SSN");
        assert_eq!(token_type("9lives"), "X9LIVES");
        assert_eq!(token_type(""), "ENTITY");
        assert_eq!(token_type("é-x"), "X_X");
        assert_eq!(token_type(&"A".repeat(100)).len(), MAX_TYPE_LEN);
    }

    #[test]
    fn hash_tokens_are_keyed_and_stable() {
        let (k1, k2) = (KeyedMac::new(b"k1"), KeyedMac::new(b"k2"));
        let a = hash_token(&k1, "EMAIL", "a@b.c");
        assert_eq!(a, hash_token(&KeyedMac::new(b"k1"), "EMAIL", "a@b.c"));
        assert_ne!(a, hash_token(&k2, "EMAIL", "a@b.c"));
        assert!(a.starts_with("<EMAIL#") && a.ends_with('>') && a.len() == 20);
    }
}
