//! Errors: one error type with a kind, and lint problems with a line.

use std::fmt;

/// One problem in a policy file, with the 1-based line it was found on (when known).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Problem {
    /// 1-based line in the policy file.
    pub line: Option<usize>,
    /// What is wrong.
    pub message: String,
}

impl Problem {
    pub(crate) fn new(line: Option<usize>, message: impl Into<String>) -> Problem {
        Problem {
            line,
            message: message.into(),
        }
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.line {
            Some(l) => write!(f, "line {l}: {}", self.message),
            None => f.write_str(&self.message),
        }
    }
}

/// What kind of failure an [`Error`] is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ErrorKind {
    /// The policy file is invalid (see [`Error::problems`]).
    Policy,
    /// Reading a file failed.
    Io,
    /// The ledger could not be reached or a query failed.
    Ledger,
    /// The state store (holds, approvals, idempotency) failed.
    State,
    /// No such hold or approval.
    NotFound,
    /// The hold or approval is not in a state that allows the transition.
    Conflict,
}

/// A policy error: a kind, the file it concerns, a message and (for invalid policies) every
/// problem found.
#[derive(Clone, Debug)]
pub struct Error {
    kind: ErrorKind,
    file: Option<String>,
    message: String,
    problems: Vec<Problem>,
}

impl Error {
    pub(crate) fn new(kind: ErrorKind, message: impl Into<String>) -> Error {
        Error {
            kind,
            file: None,
            message: message.into(),
            problems: Vec::new(),
        }
    }

    pub(crate) fn policy(file: &str, problems: Vec<Problem>) -> Error {
        let message = match problems.len() {
            1 => "1 problem".to_string(),
            n => format!("{n} problems"),
        };
        Error {
            kind: ErrorKind::Policy,
            file: Some(file.to_string()),
            message,
            problems,
        }
    }

    pub(crate) fn with_file(mut self, file: &str) -> Error {
        self.file = Some(file.to_string());
        self
    }

    /// The kind of failure.
    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    /// The policy file concerned, if any.
    pub fn file(&self) -> Option<&str> {
        self.file.as_deref()
    }

    /// Every problem of an invalid policy (empty for other kinds).
    pub fn problems(&self) -> &[Problem] {
        &self.problems
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(file) = &self.file {
            write!(f, "{file}: ")?;
        }
        f.write_str(&self.message)?;
        for p in &self.problems {
            match (&self.file, p.line) {
                (Some(file), Some(l)) => write!(f, "\n{file}:{l}: {}", p.message)?,
                _ => write!(f, "\n{p}")?,
            }
        }
        Ok(())
    }
}

impl std::error::Error for Error {}
