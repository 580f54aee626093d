//! Loading labeled corpora: JSON Lines, one record per line, kind detected per line.
//!
//! Two record kinds share one file format:
//!
//! * PII: `{"id", "text", "spans": [{"start", "end", "type"}]}` with `start`/`end`
//!   in Unicode code points (Python `str` indices), end exclusive.
//! * Injection: `{"id"?, "text", "label": 0|1, "source"?, "role"?, "lang"?, "tags"?}`;
//!   `tags` is a list of strings, each its own report slice (e.g. the
//!   obfuscation a record uses).
//!   `role` (or, failing that, a `source` that names a role) is the channel the
//!   detector is told the text came from; without either it is `user`.
//!
//! A line with `spans` is a PII record; a line with `label` is an injection
//! record. Blank lines are skipped. Anything else is an [`Error::Record`] naming
//! the file and line, never the text.

use std::path::{Path, PathBuf};

use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::Error;

/// The channel a text reaches the model through (what the injection detector
/// calibrates its thresholds on).
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// A user turn.
    User,
    /// A system prompt.
    System,
    /// A tool result.
    Tool,
    /// A retrieved document.
    Document,
}

impl Role {
    /// Parses `user`, `system`, `tool` or `document` (ASCII case-insensitive).
    ///
    /// # Example
    /// ```
    /// use warden_eval::Role;
    /// assert_eq!(Role::parse("Document"), Some(Role::Document));
    /// assert_eq!(Role::parse("garak"), None);
    /// ```
    pub fn parse(s: &str) -> Option<Role> {
        match s.to_ascii_lowercase().as_str() {
            "user" => Some(Role::User),
            "system" => Some(Role::System),
            "tool" => Some(Role::Tool),
            "document" => Some(Role::Document),
            _ => None,
        }
    }

    /// The lowercase name.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::User => "user",
            Role::System => "system",
            Role::Tool => "tool",
            Role::Document => "document",
        }
    }
}

/// A labeled PII span, converted to UTF-8 byte offsets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GoldSpan {
    /// Entity type as the scanner names it, e.g. `EMAIL`.
    pub entity: String,
    /// Start byte offset.
    pub start: usize,
    /// End byte offset (exclusive).
    pub end: usize,
}

/// One PII record.
#[derive(Debug, Clone)]
pub struct PiiRecord {
    /// Unique id (reported instead of the text).
    pub id: String,
    /// The text to scan.
    pub text: String,
    /// Expected entities.
    pub spans: Vec<GoldSpan>,
}

/// One injection record.
#[derive(Debug, Clone)]
pub struct InjectionRecord {
    /// Unique id: given, or `<file stem>:<12 hex of sha256(text)>`.
    pub id: String,
    /// The text to score.
    pub text: String,
    /// True for an injection or jailbreak.
    pub label: bool,
    /// Channel the detector is told about.
    pub role: Role,
    /// Corpus `source` field, if any (a slice).
    pub source: Option<String>,
    /// Language code, if any (a slice).
    pub lang: Option<String>,
    /// Extra slice names (`tags`), e.g. `zero_width`.
    pub tags: Vec<String>,
}

/// A record of either kind.
#[derive(Debug, Clone)]
pub enum Record {
    /// A PII record.
    Pii(PiiRecord),
    /// An injection record.
    Injection(InjectionRecord),
}

impl Record {
    /// The record's id.
    pub fn id(&self) -> &str {
        match self {
            Record::Pii(r) => &r.id,
            Record::Injection(r) => &r.id,
        }
    }
}

/// A record and where it came from.
#[derive(Debug, Clone)]
pub struct Located {
    /// 1-based line number in [`Corpus::path`].
    pub line: usize,
    /// The record.
    pub record: Record,
}

/// One loaded corpus file.
#[derive(Debug, Clone)]
pub struct Corpus {
    /// The file it was read from.
    pub path: PathBuf,
    /// SHA-256 of the file's bytes (hex), so a report says what it measured.
    pub sha256: String,
    /// Records in file order.
    pub records: Vec<Located>,
}

impl Corpus {
    /// Reads and parses a JSONL corpus file.
    ///
    /// # Errors
    /// [`Error::Io`] when the file cannot be read, [`Error::Record`] (with the
    /// line number) for the first malformed record.
    pub fn load(path: &Path) -> Result<Corpus, Error> {
        let bytes = std::fs::read(path).map_err(|error| Error::Io {
            file: path.to_path_buf(),
            error,
        })?;
        let text = String::from_utf8(bytes).map_err(|e| {
            let upto = &e.as_bytes()[..e.utf8_error().valid_up_to()];
            let line = upto.iter().filter(|&&b| b == b'\n').count() + 1;
            Error::Record {
                file: path.to_path_buf(),
                line,
                reason: "invalid UTF-8".into(),
            }
        })?;
        Corpus::parse(path, &text)
    }

    /// Parses corpus text; `path` is used in ids and error messages only.
    ///
    /// # Example
    /// ```
    /// use std::path::Path;
    /// use warden_eval::{Corpus, Record};
    /// let src = r#"{"id":"t1","text":"héllo a@b.io","spans":[{"start":6,"end":12,"type":"EMAIL"}]}"#;
    /// let corpus = Corpus::parse(Path::new("x.jsonl"), src).unwrap();
    /// let Record::Pii(rec) = &corpus.records[0].record else { panic!() };
    /// assert_eq!(&rec.text[rec.spans[0].start..rec.spans[0].end], "a@b.io");
    /// ```
    ///
    /// # Errors
    /// [`Error::Record`] for the first malformed record.
    pub fn parse(path: &Path, text: &str) -> Result<Corpus, Error> {
        let stem = path
            .file_stem()
            .and_then(|s| s.to_str())
            .unwrap_or("corpus")
            .to_string();
        let mut records = Vec::new();
        for (idx, raw) in text.lines().enumerate() {
            let line = idx + 1;
            if raw.trim().is_empty() {
                continue;
            }
            let bad = |reason: String| Error::Record {
                file: path.to_path_buf(),
                line,
                reason,
            };
            let record = parse_record(raw, &stem).map_err(bad)?;
            records.push(Located { line, record });
        }
        Ok(Corpus {
            path: path.to_path_buf(),
            sha256: hex::encode(Sha256::digest(text.as_bytes())),
            records,
        })
    }
}

fn parse_record(raw: &str, stem: &str) -> Result<Record, String> {
    // serde_json's messages quote at most a token, never the whole line, but
    // keep only line/column to be sure no record text leaks into CI logs.
    let value: Value =
        serde_json::from_str(raw).map_err(|e| format!("invalid JSON at column {}", e.column()))?;
    let obj = value.as_object().ok_or("record is not a JSON object")?;
    let text = match obj.get("text") {
        Some(Value::String(s)) => s.clone(),
        Some(_) => return Err("`text` is not a string".into()),
        None => return Err("missing `text`".into()),
    };
    let opt_str = |key: &str| -> Result<Option<String>, String> {
        match obj.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) if !s.is_empty() => Ok(Some(s.clone())),
            Some(Value::String(_)) => Err(format!("`{key}` is empty")),
            Some(_) => Err(format!("`{key}` is not a string")),
        }
    };
    let id = opt_str("id")?;
    match (obj.get("spans"), obj.get("label")) {
        (Some(_), Some(_)) => Err("record has both `spans` (PII) and `label` (injection)".into()),
        (Some(spans), None) => {
            let id = id.ok_or("PII record without `id`")?;
            let spans = parse_spans(spans, &text)?;
            Ok(Record::Pii(PiiRecord { id, text, spans }))
        }
        (None, Some(label)) => {
            let label = match label {
                Value::Bool(b) => *b,
                Value::Number(n) if n.as_u64() == Some(1) => true,
                Value::Number(n) if n.as_u64() == Some(0) => false,
                _ => return Err("`label` must be 0, 1, true or false".into()),
            };
            let source = opt_str("source")?;
            let role = match opt_str("role")? {
                Some(r) => Role::parse(&r)
                    .ok_or_else(|| format!("unknown `role` {r:?} (user|system|tool|document)"))?,
                None => source
                    .as_deref()
                    .and_then(Role::parse)
                    .unwrap_or(Role::User),
            };
            let lang = opt_str("lang")?;
            let tags = match obj.get("tags") {
                None | Some(Value::Null) => Vec::new(),
                Some(Value::Array(items)) => items
                    .iter()
                    .map(|v| match v {
                        Value::String(s) if !s.is_empty() => Ok(s.clone()),
                        _ => Err("`tags` must be a list of non-empty strings".to_string()),
                    })
                    .collect::<Result<Vec<_>, _>>()?,
                Some(_) => return Err("`tags` must be a list of non-empty strings".into()),
            };
            let id = id.unwrap_or_else(|| {
                let digest = hex::encode(Sha256::digest(text.as_bytes()));
                format!("{stem}:{}", &digest[..12])
            });
            Ok(Record::Injection(InjectionRecord {
                id,
                text,
                label,
                role,
                source,
                lang,
                tags,
            }))
        }
        (None, None) => Err("neither `spans` (PII record) nor `label` (injection record)".into()),
    }
}

fn parse_spans(spans: &Value, text: &str) -> Result<Vec<GoldSpan>, String> {
    let arr = spans.as_array().ok_or("`spans` is not an array")?;
    // Code point index -> byte offset, with one extra entry for the end.
    let mut offsets: Vec<usize> = text.char_indices().map(|(b, _)| b).collect();
    offsets.push(text.len());
    let chars = offsets.len() - 1;
    let mut out = Vec::with_capacity(arr.len());
    for (i, span) in arr.iter().enumerate() {
        let obj = span
            .as_object()
            .ok_or_else(|| format!("spans[{i}] is not an object"))?;
        let num = |key: &str| {
            obj.get(key)
                .and_then(Value::as_u64)
                .and_then(|n| usize::try_from(n).ok())
                .ok_or_else(|| format!("spans[{i}].{key} is not a non-negative integer"))
        };
        let (start, end) = (num("start")?, num("end")?);
        let entity = match obj.get("type") {
            Some(Value::String(s)) if !s.is_empty() => s.clone(),
            _ => return Err(format!("spans[{i}].type is missing or not a string")),
        };
        if start >= end || end > chars {
            return Err(format!(
                "spans[{i}] ({entity}) has start {start}, end {end}: need start < end <= {chars} (code points)"
            ));
        }
        out.push(GoldSpan {
            entity,
            start: offsets[start],
            end: offsets[end],
        });
    }
    out.sort_by_key(|s| (s.start, s.end));
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(src: &str) -> Result<Corpus, Error> {
        Corpus::parse(Path::new("dir/c.jsonl"), src)
    }

    #[test]
    fn code_points_become_bytes() {
        let c = parse(r#"{"id":"a","text":"€€ 4111","spans":[{"start":3,"end":7,"type":"X"}]}"#)
            .unwrap();
        let Record::Pii(r) = &c.records[0].record else {
            panic!("kind")
        };
        assert_eq!((r.spans[0].start, r.spans[0].end), (7, 11));
    }

    #[test]
    fn injection_defaults() {
        let c = parse("\n{\"text\":\"hi\",\"label\":1,\"source\":\"document\"}\n{\"text\":\"x\",\"label\":false,\"source\":\"garak\",\"role\":\"system\"}").unwrap();
        let Record::Injection(r) = &c.records[0].record else {
            panic!("kind")
        };
        assert_eq!(c.records[0].line, 2);
        assert!(r.label);
        assert_eq!(r.role, Role::Document);
        assert!(r.id.starts_with("c:") && r.id.len() == 14, "{}", r.id);
        let Record::Injection(r) = &c.records[1].record else {
            panic!("kind")
        };
        assert_eq!(
            (r.role, r.source.as_deref(), r.label),
            (Role::System, Some("garak"), false)
        );
    }

    #[test]
    fn errors_name_file_and_line_but_not_text() {
        let cases = [
            (
                r#"{"id":"a","text":"secret 123","spans":[{"start":5,"end":99,"type":"X"}]}"#,
                "start < end",
            ),
            (
                r#"{"id":"a","text":"secret 123","spans":[{"start":5,"end":5,"type":"X"}]}"#,
                "start < end",
            ),
            (r#"{"text":"secret 123","spans":[]}"#, "without `id`"),
            (r#"{"id":"a","text":"secret 123"}"#, "neither"),
            (r#"{"text":"secret 123","label":2}"#, "`label`"),
            (
                r#"{"text":"secret 123","label":1,"role":"boss"}"#,
                "unknown `role`",
            ),
            (r#"{"text":"secret 123","label":1,"spans":[]}"#, "both"),
            (r#"{"text":"secret 123", oops}"#, "invalid JSON"),
            (r#"["secret 123"]"#, "not a JSON object"),
            (r#"{"text":"secret 123","label":1,"tags":"x"}"#, "`tags`"),
            (r#"{"text":"secret 123","label":1,"tags":[1]}"#, "`tags`"),
        ];
        for (src, want) in cases {
            let err = parse(&format!("\n\n{src}")).unwrap_err().to_string();
            assert!(err.starts_with("dir/c.jsonl:3: "), "{err}");
            assert!(err.contains(want), "{err} lacks {want}");
            assert!(!err.contains("secret"), "{err} echoes text");
        }
    }
}
