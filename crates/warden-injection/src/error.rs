//! Errors for loading rules, models and configuration.

/// What went wrong, without echoing any scanned text.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ErrorKind {
    /// A rules file is malformed or a rule is invalid.
    Pack,
    /// The learned model file is malformed.
    Model,
    /// Reading a file or directory failed.
    Io,
    /// A configuration value is invalid.
    Config,
}

/// An error loading the detector: kind, file and rule where known.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{}{}{}", .file.as_deref().map(|f| format!("{f}: ")).unwrap_or_default(), .rule.as_deref().map(|r| format!("rule {r}: ")).unwrap_or_default(), .reason)]
pub struct Error {
    kind: ErrorKind,
    file: Option<String>,
    rule: Option<String>,
    reason: String,
}

impl Error {
    pub(crate) fn pack(file: &str, rule: Option<&str>, reason: String) -> Error {
        Error {
            kind: ErrorKind::Pack,
            file: Some(file.to_string()),
            rule: rule.map(str::to_string),
            reason,
        }
    }
    pub(crate) fn model(reason: String) -> Error {
        Error {
            kind: ErrorKind::Model,
            file: None,
            rule: None,
            reason,
        }
    }
    pub(crate) fn io(file: &str, reason: String) -> Error {
        Error {
            kind: ErrorKind::Io,
            file: Some(file.to_string()),
            rule: None,
            reason,
        }
    }
    pub(crate) fn config(reason: String) -> Error {
        Error {
            kind: ErrorKind::Config,
            file: None,
            rule: None,
            reason,
        }
    }
    /// The kind of failure.
    pub fn kind(&self) -> &ErrorKind {
        &self.kind
    }
    /// The file concerned, if any.
    pub fn file(&self) -> Option<&str> {
        self.file.as_deref()
    }
    /// The rule id concerned, if any.
    pub fn rule(&self) -> Option<&str> {
        self.rule.as_deref()
    }
}
