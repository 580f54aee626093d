//! The vault: which placeholder token stands for which original value, and
//! putting originals back into text.

use std::collections::HashMap;
use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::error::{Error, ErrorKind};

use super::strategy::{push_hex, token_type, KeyedMac, MAX_TOKEN_LEN, MAX_TYPE_LEN};

fn vault_error(reason: String) -> Error {
    // Reasons name tokens and entry indexes, which are not sensitive; never
    // an original value.
    Error::new(ErrorKind::Vault, reason)
}

#[derive(Clone)]
struct Entry {
    entity: String,
    original: String,
}

/// Token ↔ original value, for the `placeholder` strategy.
///
/// A vault hands out one token per (entity type, value) and remembers it, so
/// the same value always gets the same token. [`Vault::new`] numbers tokens
/// (`<EMAIL_1>`, `<EMAIL_2>`); [`Vault::with_key`] derives them from a keyed
/// HMAC (`<EMAIL_3fa9c2d1>`), so two vaults with the same key give the same
/// value the same token — that is what keeps tokens stable across the turns
/// of a conversation when every request gets a fresh vault.
///
/// It serialises to JSON (`{"version":1,"entries":[{"token","entity","original"}]}`)
/// for `warden redact --vault FILE`; the key is never written. Its `Debug`
/// output shows only counts.
///
/// # Example
/// ```
/// use warden_core::Vault;
/// let mut vault = Vault::new();
/// let t = vault.placeholder("EMAIL", "jane@example.org");
/// assert_eq!(t, "<EMAIL_1>");
/// assert_eq!(vault.placeholder("EMAIL", "jane@example.org"), "<EMAIL_1>");
/// assert_eq!(vault.restore("write to <EMAIL_1>"), "write to jane@example.org");
/// assert_eq!(format!("{vault:?}"), "Vault { entries: 1, keyed: false }");
/// ```
#[derive(Clone, Default)]
pub struct Vault {
    by_token: HashMap<String, Entry>,
    /// `entity \0 original` → token.
    by_value: HashMap<String, String>,
    /// Next counter per token type, for unkeyed vaults.
    next: HashMap<String, u64>,
    key: Option<KeyedMac>,
}

impl fmt::Debug for Vault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Originals (and the key) must never reach a log line.
        f.debug_struct("Vault")
            .field("entries", &self.by_token.len())
            .field("keyed", &self.key.is_some())
            .finish()
    }
}

fn value_key(entity: &str, original: &str) -> String {
    let mut k = String::with_capacity(entity.len() + 1 + original.len());
    k.push_str(entity);
    k.push('\0');
    k.push_str(original);
    k
}

impl Vault {
    /// An empty vault with numbered tokens (`<EMAIL_1>`).
    ///
    /// # Example
    /// ```
    /// let vault = warden_core::Vault::new();
    /// assert!(vault.is_empty());
    /// ```
    pub fn new() -> Vault {
        Vault::default()
    }

    /// An empty vault whose tokens are `<TYPE_` + 8 hex digits of
    /// HMAC-SHA256(key, TYPE ‖ 0x00 ‖ value) + `>`: the same across vaults
    /// built with the same key.
    ///
    /// Two different values whose digests collide in 32 bits get a salted
    /// digest instead, so a token never stands for two values; only the value
    /// that came second is then not stable across vaults.
    ///
    /// # Example
    /// ```
    /// use warden_core::Vault;
    /// let mut turn1 = Vault::with_key(b"per-team secret");
    /// let mut turn2 = Vault::with_key(b"per-team secret");
    /// let t = turn1.placeholder("EMAIL", "jane@example.org");
    /// assert_eq!(t.len(), "<EMAIL_12345678>".len());
    /// assert_eq!(turn2.placeholder("EMAIL", "jane@example.org"), t);
    /// ```
    pub fn with_key(key: &[u8]) -> Vault {
        Vault {
            key: Some(KeyedMac::new(key)),
            ..Vault::default()
        }
    }

    /// Switches to keyed tokens for values not yet in the vault; existing
    /// tokens keep their meaning. A vault read back from JSON has no key
    /// (the key is never written), so a store that persists vaults between
    /// requests sets it again after loading to keep new tokens stable.
    ///
    /// # Example
    /// ```
    /// use warden_core::Vault;
    /// let mut v = Vault::new();
    /// v.placeholder("EMAIL", "a@example.org");
    /// let mut back: Vault = serde_json::from_str(&serde_json::to_string(&v).unwrap()).unwrap();
    /// back.set_key(b"team key");
    /// let t = back.placeholder("EMAIL", "b@example.org");
    /// assert_eq!(t, Vault::with_key(b"team key").placeholder("EMAIL", "b@example.org"));
    /// assert_eq!(back.get("<EMAIL_1>"), Some("a@example.org"));
    /// ```
    pub fn set_key(&mut self, key: &[u8]) {
        self.key = Some(KeyedMac::new(key));
    }

    /// True when tokens are derived from a key.
    pub fn is_keyed(&self) -> bool {
        self.key.is_some()
    }

    /// Number of tokens in the vault.
    pub fn len(&self) -> usize {
        self.by_token.len()
    }

    /// True when the vault holds no token.
    pub fn is_empty(&self) -> bool {
        self.by_token.is_empty()
    }

    /// The original value behind `token`, if the vault knows it.
    ///
    /// # Example
    /// ```
    /// let mut vault = warden_core::Vault::new();
    /// vault.placeholder("US_SSN", "078-05-1120");
    /// assert_eq!(vault.get("<US_SSN_1>"), Some("078-05-1120"));
    /// assert_eq!(vault.get("<US_SSN_2>"), None);
    /// ```
    pub fn get(&self, token: &str) -> Option<&str> {
        self.by_token.get(token).map(|e| e.original.as_str())
    }

    /// The token already assigned to this entity type and value, if any.
    pub fn token_for(&self, entity: &str, original: &str) -> Option<&str> {
        self.by_value
            .get(&value_key(entity, original))
            .map(String::as_str)
    }

    /// The token for `original` of type `entity`, assigning a new one the
    /// first time the pair is seen.
    ///
    /// # Example
    /// ```
    /// let mut vault = warden_core::Vault::new();
    /// assert_eq!(vault.placeholder("EMAIL", "a@example.org"), "<EMAIL_1>");
    /// assert_eq!(vault.placeholder("EMAIL", "b@example.org"), "<EMAIL_2>");
    /// assert_eq!(vault.placeholder("PHONE", "+44 20 7946 0958"), "<PHONE_1>");
    /// ```
    pub fn placeholder(&mut self, entity: &str, original: &str) -> String {
        self.placeholder_avoiding(entity, original, |_| false)
    }

    /// [`Vault::placeholder`], never handing out a *new* token in `avoid`:
    /// the redactor passes the token-like strings already present in the
    /// text, so restoring cannot turn a literal `<EMAIL_1>` the user wrote
    /// into someone's address.
    pub(crate) fn placeholder_avoiding(
        &mut self,
        entity: &str,
        original: &str,
        avoid: impl Fn(&str) -> bool,
    ) -> String {
        let vk = value_key(entity, original);
        if let Some(t) = self.by_value.get(&vk) {
            return t.clone();
        }
        let ty = token_type(entity);
        let token = match &self.key {
            Some(key) => {
                let mut salt = 0u64;
                loop {
                    let salt_s = salt.to_string();
                    let parts: [&[u8]; 3] = [ty.as_bytes(), original.as_bytes(), salt_s.as_bytes()];
                    // The unsalted form is the documented, cross-vault stable one.
                    let digest = if salt == 0 {
                        key.digest(&parts[..2])
                    } else {
                        key.digest(&parts)
                    };
                    let mut t = String::with_capacity(ty.len() + 11);
                    t.push('<');
                    t.push_str(&ty);
                    t.push('_');
                    push_hex(&mut t, &digest[..4]);
                    t.push('>');
                    if !self.by_token.contains_key(&t) && !avoid(&t) {
                        break t;
                    }
                    salt += 1;
                }
            }
            None => loop {
                let n = self.next.entry(ty.clone()).or_insert(1);
                let t = format!("<{ty}_{n}>");
                *n += 1;
                // Only a merged or loaded vault can already hold it.
                if !self.by_token.contains_key(&t) && !avoid(&t) {
                    break t;
                }
            },
        };
        self.by_token.insert(
            token.clone(),
            Entry {
                entity: entity.to_owned(),
                original: original.to_owned(),
            },
        );
        self.by_value.insert(vk, token.clone());
        token
    }

    /// Puts the original value back for every token the vault knows.
    ///
    /// One left-to-right pass over the text; tokens the vault does not know
    /// are left as they are (see [`Vault::unknown_tokens`]).
    ///
    /// # Example
    /// ```
    /// let mut vault = warden_core::Vault::new();
    /// vault.placeholder("EMAIL", "jane@example.org");
    /// assert_eq!(
    ///     vault.restore("<EMAIL_1> and <EMAIL_9>"),
    ///     "jane@example.org and <EMAIL_9>"
    /// );
    /// ```
    pub fn restore(&self, text: &str) -> String {
        let mut out = String::with_capacity(text.len());
        self.restore_into(text, false, &mut out);
        out
    }

    /// Like [`Vault::restore`], for text inside a JSON string literal (for
    /// example the `arguments` string of a tool call): originals are escaped
    /// (`"`, `\`, control characters) so the JSON stays valid.
    ///
    /// # Example
    /// ```
    /// let mut vault = warden_core::Vault::new();
    /// vault.placeholder("PERSON", "Jane \"JD\" Doe");
    /// let args = r#"{"name":"<PERSON_1>"}"#;
    /// let restored = vault.restore_json(args);
    /// assert_eq!(restored, r#"{"name":"Jane \"JD\" Doe"}"#);
    /// let v: serde_json::Value = serde_json::from_str(&restored).unwrap();
    /// assert_eq!(v["name"], "Jane \"JD\" Doe");
    /// ```
    pub fn restore_json(&self, json_string_body: &str) -> String {
        let mut out = String::with_capacity(json_string_body.len());
        self.restore_into(json_string_body, true, &mut out);
        out
    }

    pub(crate) fn restore_into(&self, text: &str, json: bool, out: &mut String) {
        let bytes = text.as_bytes();
        let mut copied = 0;
        let mut at = 0;
        while let Some(off) = memchr::memchr(b'<', &bytes[at..]) {
            let lt = at + off;
            match token_len(&bytes[lt..]) {
                Some(len) => {
                    let token = &text[lt..lt + len];
                    if let Some(e) = self.by_token.get(token) {
                        out.push_str(&text[copied..lt]);
                        if json {
                            push_json_escaped(out, &e.original);
                        } else {
                            out.push_str(&e.original);
                        }
                        copied = lt + len;
                    }
                    at = lt + len;
                }
                None => at = lt + 1,
            }
        }
        out.push_str(&text[copied..]);
    }

    /// Tokens in `text` that follow the placeholder grammar but that this
    /// vault does not know, in order of appearance.
    ///
    /// The proxy refuses a tool call whose arguments contain one: restoring
    /// it is impossible, and passing it on would make an agent act on a
    /// made-up value.
    ///
    /// # Example
    /// ```
    /// let mut vault = warden_core::Vault::new();
    /// vault.placeholder("EMAIL", "jane@example.org");
    /// assert_eq!(vault.unknown_tokens("<EMAIL_1> <EMAIL_2> <b>"), vec!["<EMAIL_2>"]);
    /// ```
    pub fn unknown_tokens<'t>(&self, text: &'t str) -> Vec<&'t str> {
        placeholders(text)
            .filter(|t| !self.by_token.contains_key(*t))
            .collect()
    }

    /// Adds every token of `other` to this vault.
    ///
    /// # Errors
    /// An error of kind [`ErrorKind::Vault`] naming the token when both
    /// vaults use one token for different values; the vault is then left
    /// unchanged.
    ///
    /// # Example
    /// ```
    /// use warden_core::Vault;
    /// let mut a = Vault::new();
    /// a.placeholder("EMAIL", "a@example.org");
    /// let mut b = Vault::new();
    /// b.placeholder("PHONE", "+1 202 555 0143");
    /// a.merge(b).unwrap();
    /// assert_eq!(a.len(), 2);
    ///
    /// let mut c = Vault::new();
    /// c.placeholder("EMAIL", "c@example.org"); // also <EMAIL_1>
    /// assert!(a.merge(c).is_err());
    /// ```
    pub fn merge(&mut self, other: Vault) -> Result<(), Error> {
        for (token, e) in &other.by_token {
            if let Some(mine) = self.by_token.get(token) {
                if mine.original != e.original || mine.entity != e.entity {
                    return Err(vault_error(format!(
                        "token {token} stands for different values in the two vaults"
                    )));
                }
            }
        }
        for (token, e) in other.by_token {
            self.by_value
                .entry(value_key(&e.entity, &e.original))
                .or_insert_with(|| token.clone());
            self.by_token.entry(token).or_insert(e);
        }
        self.recount();
        Ok(())
    }

    /// Moves counters past every numbered token present, so new tokens never
    /// reuse one (after a merge or a load).
    fn recount(&mut self) {
        for token in self.by_token.keys() {
            if let Some((ty, id)) = split_token(token) {
                if id.bytes().all(|b| b.is_ascii_digit()) {
                    if let Ok(n) = id.parse::<u64>() {
                        let next = self.next.entry(ty.to_owned()).or_insert(1);
                        if *next <= n {
                            *next = n.saturating_add(1);
                        }
                    }
                }
            }
        }
    }

    /// Iterates over `(token, entity)` pairs, never the originals; for
    /// reports that must not reveal values.
    pub fn tokens(&self) -> impl Iterator<Item = (&str, &str)> {
        self.by_token
            .iter()
            .map(|(t, e)| (t.as_str(), e.entity.as_str()))
    }
}

/// Appends `s` escaped for the inside of a JSON string literal.
pub(crate) fn push_json_escaped(out: &mut String, s: &str) {
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            c if (c as u32) < 0x20 || c == '\u{2028}' || c == '\u{2029}' => {
                // U+2028/2029 are valid JSON but break JavaScript consumers.
                out.push_str(&format!("\\u{:04x}", c as u32));
            }
            c => out.push(c),
        }
    }
}

/// If `bytes` starts with a complete placeholder token, its length.
///
/// Grammar: `<` TYPE `_` ID `>` where TYPE is `[A-Z][A-Z0-9_]*` (at most
/// 48 bytes) and ID is 1–20 ASCII digits or exactly 8 lowercase hex digits.
fn token_len(bytes: &[u8]) -> Option<usize> {
    if bytes.first() != Some(&b'<') {
        return None;
    }
    let limit = bytes.len().min(MAX_TOKEN_LEN);
    let mut i = 1;
    while i < limit && is_body_byte(bytes[i]) {
        i += 1;
    }
    if i >= limit || bytes[i] != b'>' {
        return None;
    }
    let body = &bytes[1..i];
    valid_body(body).then_some(i + 1)
}

fn is_body_byte(b: u8) -> bool {
    b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_' || (b'a'..=b'f').contains(&b)
}

fn valid_body(body: &[u8]) -> bool {
    let Some(us) = body.iter().rposition(|&b| b == b'_') else {
        return false;
    };
    let (ty, id) = (&body[..us], &body[us + 1..]);
    let ty_ok = !ty.is_empty()
        && ty.len() <= MAX_TYPE_LEN
        && ty[0].is_ascii_uppercase()
        && ty
            .iter()
            .all(|&b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_');
    let digits = !id.is_empty() && id.len() <= 20 && id.iter().all(u8::is_ascii_digit);
    let hex = id.len() == 8
        && id
            .iter()
            .all(|&b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
    ty_ok && (digits || hex)
}

fn split_token(token: &str) -> Option<(&str, &str)> {
    let body = token.strip_prefix('<')?.strip_suffix('>')?;
    body.rsplit_once('_')
}

/// Iterates over every substring of `text` that is a placeholder token.
pub(crate) fn placeholders(text: &str) -> impl Iterator<Item = &str> {
    let bytes = text.as_bytes();
    let mut at = 0;
    std::iter::from_fn(move || {
        while let Some(off) = memchr::memchr(b'<', &bytes[at..]) {
            let lt = at + off;
            if let Some(len) = token_len(&bytes[lt..]) {
                at = lt + len;
                return Some(&text[lt..lt + len]);
            }
            at = lt + 1;
        }
        at = bytes.len();
        None
    })
}

/// True when `s` is exactly one placeholder token (`<EMAIL_1>`,
/// `<US_SSN_3fa9c2d1>`).
///
/// # Example
/// ```
/// use warden_core::is_placeholder;
/// assert!(is_placeholder("<EMAIL_1>"));
/// assert!(is_placeholder("<US_SSN_3fa9c2d1>"));
/// assert!(!is_placeholder("<EMAIL#a1b2c3d4e5f6>")); // a hash, not restorable
/// assert!(!is_placeholder("<b>"));
/// ```
pub fn is_placeholder(s: &str) -> bool {
    token_len(s.as_bytes()) == Some(s.len())
}

/// True when `s` could be the beginning of a placeholder token (or is one):
/// what a streaming restorer must hold back at a chunk edge.
///
/// # Example
/// ```
/// use warden_core::is_placeholder_prefix;
/// assert!(is_placeholder_prefix("<"));
/// assert!(is_placeholder_prefix("<EMA"));
/// assert!(is_placeholder_prefix("<EMAIL_1"));
/// assert!(is_placeholder_prefix("<EMAIL_1>"));
/// assert!(!is_placeholder_prefix("<email"));
/// assert!(!is_placeholder_prefix("<EMAIL_1> "));
/// ```
pub fn is_placeholder_prefix(s: &str) -> bool {
    let b = s.as_bytes();
    if b.first() != Some(&b'<') || b.len() > MAX_TOKEN_LEN {
        return false;
    }
    if b.len() > 1 && b[b.len() - 1] == b'>' {
        return token_len(b) == Some(b.len());
    }
    let body = &b[1..];
    if !body.iter().all(|&x| is_body_byte(x)) {
        return false;
    }
    if body.is_empty() {
        return true;
    }
    if !body[0].is_ascii_uppercase() {
        return false;
    }
    // Can some completion be a token? The type is everything up to the last
    // `_`; what follows must still be able to become an ID.
    match body.iter().rposition(|&b| b == b'_') {
        None => body.len() <= MAX_TYPE_LEN && !body.iter().any(|b| b.is_ascii_lowercase()),
        Some(us) => {
            let (ty, id) = (&body[..us], &body[us + 1..]);
            let ty_ok = ty.len() <= MAX_TYPE_LEN && ty.iter().all(|&b| !b.is_ascii_lowercase());
            // A type may itself contain `_`: `<US_SSN` is also a prefix of a
            // longer type, so "no valid ID yet" is fine as long as the
            // whole body could still be a type.
            let could_be_type =
                body.len() <= MAX_TYPE_LEN && !body.iter().any(|b| b.is_ascii_lowercase());
            let id_ok = id.len() <= 20
                && (id.iter().all(u8::is_ascii_digit)
                    || (id.len() <= 8
                        && id
                            .iter()
                            .all(|&b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))));
            (ty_ok && id_ok) || could_be_type
        }
    }
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct VaultFile<E> {
    version: u32,
    entries: Vec<E>,
}

#[derive(Serialize)]
struct EntryRef<'a> {
    token: &'a str,
    entity: &'a str,
    original: &'a str,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct EntryOwned {
    token: String,
    entity: String,
    original: String,
}

impl Serialize for Vault {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut entries: Vec<EntryRef<'_>> = self
            .by_token
            .iter()
            .map(|(t, e)| EntryRef {
                token: t,
                entity: &e.entity,
                original: &e.original,
            })
            .collect();
        // Stable output: by type, then numerically for counters.
        entries.sort_by(|a, b| {
            let ka = split_token(a.token);
            let kb = split_token(b.token);
            match (ka, kb) {
                (Some((ta, ia)), Some((tb, ib))) => {
                    ta.cmp(tb).then(ia.len().cmp(&ib.len())).then(ia.cmp(ib))
                }
                _ => a.token.cmp(b.token),
            }
        });
        VaultFile {
            version: 1,
            entries,
        }
        .serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for Vault {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let file = VaultFile::<EntryOwned>::deserialize(deserializer)?;
        Vault::from_entries(file).map_err(serde::de::Error::custom)
    }
}

impl Vault {
    fn from_entries(file: VaultFile<EntryOwned>) -> Result<Vault, Error> {
        if file.version != 1 {
            return Err(vault_error(format!(
                "format version {} is not supported (expected 1)",
                file.version
            )));
        }
        let mut v = Vault::new();
        for (index, e) in file.entries.into_iter().enumerate() {
            if !is_placeholder(&e.token) {
                return Err(vault_error(format!(
                    "entry {index}: not a placeholder token"
                )));
            }
            if let Some(prev) = v.by_token.get(&e.token) {
                if prev.original != e.original || prev.entity != e.entity {
                    return Err(vault_error(format!(
                        "entry {index}: token {} is defined twice",
                        e.token
                    )));
                }
                continue;
            }
            v.by_value
                .entry(value_key(&e.entity, &e.original))
                .or_insert_with(|| e.token.clone());
            v.by_token.insert(
                e.token,
                Entry {
                    entity: e.entity,
                    original: e.original,
                },
            );
        }
        v.recount();
        Ok(v)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grammar() {
        for ok in ["<EMAIL_1>", "<US_SSN_12>", "<A_00000000>", "<X9_deadbeef>"] {
            assert!(is_placeholder(ok), "{ok}");
            for i in 1..=ok.len() {
                assert!(is_placeholder_prefix(&ok[..i]), "{}", &ok[..i]);
            }
        }
        for bad in [
            "<EMAIL>",
            "<_1>",
            "<email_1>",
            "<EMAIL_>",
            "<EMAIL_dead>",
            "<EMAIL_1 >",
            "<EMAIL_123456789012345678901>",
            "<1A_1>",
        ] {
            assert!(!is_placeholder(bad), "{bad}");
        }
        assert!(!is_placeholder_prefix("<EMAIL_12345678a"));
        assert!(!is_placeholder_prefix("<E>"));
        let long = format!("<{}_1>", "A".repeat(MAX_TYPE_LEN + 1));
        assert!(!is_placeholder(&long));
    }

    #[test]
    fn keyed_collisions_never_share_a_token() {
        let mut v = Vault::with_key(b"k");
        let mut seen = std::collections::HashSet::new();
        for i in 0..20_000 {
            let t = v.placeholder("EMAIL", &format!("u{i}@x.org"));
            assert!(is_placeholder(&t));
            assert!(seen.insert(t));
        }
        assert_eq!(v.len(), 20_000);
    }
}
