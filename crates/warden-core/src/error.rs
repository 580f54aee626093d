//! The one error type of this crate: a kind plus, where known, the file and
//! rule that caused it.
//!
//! Messages never contain a scanned value: only pack/config locations and a
//! reason written by us (or by the regex parser, about a pattern we loaded).

use std::fmt;

/// What went wrong, broadly. Match on this; the message is for humans.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorKind {
    /// A pattern pack is malformed (TOML syntax, unknown field, bad value,
    /// duplicate rule id, unknown validator, too few examples, ...).
    Pack,
    /// A regular expression failed to compile, e.g. because it uses
    /// look-around or backreferences (only linear-time regexes are allowed).
    Regex,
    /// A configuration value is invalid.
    Config,
    /// Reading a file or directory failed.
    Io,
    /// A vault could not be read, written or parsed.
    Vault,
    /// JSON input could not be parsed or walked.
    Json,
}

impl ErrorKind {
    fn as_str(self) -> &'static str {
        match self {
            ErrorKind::Pack => "pack error",
            ErrorKind::Regex => "regex error",
            ErrorKind::Config => "config error",
            ErrorKind::Io => "I/O error",
            ErrorKind::Vault => "vault error",
            ErrorKind::Json => "JSON error",
        }
    }
}

/// An error with a kind, an optional location (file, line, rule id) and a reason.
///
/// `Display` renders `"<file>:<line>: rule <id>: <reason>"`, leaving out the
/// parts that are unknown.
///
/// # Example
/// ```
/// use warden_core::{ErrorKind, Pack};
/// let err = Pack::parse("[[rule]]\nid = \"x\"\n", "mine.toml").unwrap_err();
/// assert_eq!(err.kind(), &ErrorKind::Pack);
/// assert_eq!(err.file(), Some("mine.toml"));
/// assert!(err.to_string().starts_with("mine.toml"));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error {
    kind: ErrorKind,
    file: Option<String>,
    line: Option<usize>,
    rule: Option<String>,
    reason: String,
}

impl Error {
    /// A new error of `kind` with a human-readable `reason`.
    pub fn new(kind: ErrorKind, reason: impl Into<String>) -> Error {
        Error {
            kind,
            file: None,
            line: None,
            rule: None,
            reason: reason.into(),
        }
    }

    /// Attach the file (or other origin, like `builtin:pii/email.toml`).
    pub fn with_file(mut self, file: impl Into<String>) -> Error {
        self.file = Some(file.into());
        self
    }

    /// Attach a 1-based line number within the file.
    pub fn with_line(mut self, line: usize) -> Error {
        self.line = Some(line);
        self
    }

    /// Attach the id of the rule concerned.
    pub fn with_rule(mut self, rule: impl Into<String>) -> Error {
        self.rule = Some(rule.into());
        self
    }

    /// What kind of error this is.
    pub fn kind(&self) -> &ErrorKind {
        &self.kind
    }

    /// The file (or origin) concerned, if known.
    pub fn file(&self) -> Option<&str> {
        self.file.as_deref()
    }

    /// The 1-based line in [`Error::file`], if known.
    pub fn line(&self) -> Option<usize> {
        self.line
    }

    /// The rule id concerned, if known.
    pub fn rule(&self) -> Option<&str> {
        self.rule.as_deref()
    }

    /// The reason, without the location prefix.
    pub fn reason(&self) -> &str {
        &self.reason
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (&self.file, self.line) {
            (Some(file), Some(line)) => write!(f, "{file}:{line}: ")?,
            (Some(file), None) => write!(f, "{file}: ")?,
            (None, _) => write!(f, "{}: ", self.kind.as_str())?,
        }
        if let Some(rule) = &self.rule {
            write!(f, "rule {rule}: ")?;
        }
        f.write_str(&self.reason)
    }
}

impl std::error::Error for Error {}
