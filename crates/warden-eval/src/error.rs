//! Errors of the evaluation: bad corpus lines, unreadable files, bad baselines.

use std::path::PathBuf;

/// An evaluation error. Messages name the file and line concerned and never
/// echo the text of a corpus record (it may hold real PII).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A corpus line could not be used.
    #[error("{}:{line}: {reason}", file.display())]
    Record {
        /// Corpus file.
        file: PathBuf,
        /// 1-based line number.
        line: usize,
        /// What is wrong with the record (never its text).
        reason: String,
    },
    /// A file could not be read or written.
    // The io::Error is in the message rather than `source()`, so that
    // `anyhow`'s `{:#}` does not print it twice.
    #[error("{}: {error}", file.display())]
    Io {
        /// The file concerned.
        file: PathBuf,
        /// The underlying error.
        error: std::io::Error,
    },
    /// A stored report (baseline) could not be parsed.
    #[error("{}: not a warden eval report: {reason}", file.display())]
    Baseline {
        /// The baseline file.
        file: PathBuf,
        /// Parser message.
        reason: String,
    },
    /// The corpora contain a record kind for which no detector was given.
    #[error("{}:{line}: {kind} record but no {kind} detector is configured", file.display())]
    NoDetector {
        /// Corpus file.
        file: PathBuf,
        /// Line of the first such record.
        line: usize,
        /// `pii` or `injection`.
        kind: &'static str,
    },
}
