//! Append-only, SHA-256 hash-chained JSON Lines audit log, and its verifier.
//!
//! Every line is one JSON object:
//!
//! ```text
//! {"seq":0,"ts":"2026-11-22T23:30:00.123Z","prev":"000…000","data":{…},"hash":"9f2c…"}
//! ```
//!
//! * `seq` counts records from 0, so a deleted record leaves a gap.
//! * `prev` is the `hash` of the previous record ([`GENESIS`] for the first one).
//! * `hash` is `SHA-256(prev_hex || "\n" || body)` where `body` is the exact bytes of the
//!   line up to (not including) `,"hash":`, followed by `}`. Hashing the bytes as written,
//!   rather than a re-serialisation, means the verifier never depends on JSON
//!   canonicalisation, and any edit to a record breaks *that* record's hash.
//!
//! The payload (`data`) is generic: the policy crate writes tool-call verdicts, the proxy
//! writes one record per request. Callers must put fingerprints, never raw sensitive
//! values, into `data`; this crate cannot know which values are sensitive.
//!
//! # Example
//!
//! ```
//! use warden_audit::{verify, AuditLog, Fsync};
//!
//! let dir = tempfile::tempdir().unwrap();
//! let path = dir.path().join("audit.jsonl");
//! let log = AuditLog::open(&path, Fsync::Never).unwrap();
//! log.append(&serde_json::json!({"event": "tool_call", "verdict": "deny"})).unwrap();
//! log.append(&serde_json::json!({"event": "tool_call", "verdict": "allow"})).unwrap();
//! drop(log);
//!
//! let report = verify(&path).unwrap();
//! assert_eq!(report.records, 2);
//! assert!(report.broken.is_none());
//! ```
//!
//! # Limits
//!
//! A hash chain shows tampering, deletion and reordering *inside* the log. Removing
//! records from the end leaves a valid shorter chain; anchor [`AuditLog::head`] (the last
//! hash) somewhere else (a ticket, a WORM bucket) if truncation matters.

#![deny(missing_docs)]

use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use serde::Serialize;
use sha2::{Digest, Sha256};

/// The `prev` value of the first record: 64 zeros.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

const HASH_MARKER: &str = ",\"hash\":\"";

/// When appended records are forced to stable storage.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Fsync {
    /// `fsync` after every record: a record that `append` returned survives a power cut.
    #[default]
    Always,
    /// Write to the OS after every record, `fsync` only on [`AuditLog::sync`] and drop.
    /// Survives a process crash, not a power cut.
    Never,
}

/// An audit log error.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AuditError {
    /// Reading or writing the file failed.
    // The I/O error is part of the message rather than a `source`, so that callers that
    // print the error chain (anyhow's `{:#}`) do not repeat it.
    #[error("{path}: {error}")]
    Io {
        /// The log file.
        path: PathBuf,
        /// The I/O error.
        error: std::io::Error,
    },
    /// The payload could not be serialised to JSON.
    #[error("audit record could not be serialised: {0}")]
    Serialize(#[from] serde_json::Error),
    /// An existing log ends in a record that cannot be continued (e.g. a torn last line).
    #[error("{path}:{line}: cannot continue the chain: {reason}")]
    Corrupt {
        /// The log file.
        path: PathBuf,
        /// 1-based line number of the bad record.
        line: u64,
        /// What is wrong.
        reason: String,
    },
    /// A previous write failed half-way, so the chain state is unknown; reopen the log.
    #[error("{path}: a previous append failed; reopen the log")]
    Poisoned {
        /// The log file.
        path: PathBuf,
    },
}

/// Where a record ended up.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Receipt {
    /// The record's sequence number (0-based).
    pub seq: u64,
    /// The record's hash (lowercase hex), which the next record carries as `prev`.
    pub hash: String,
}

struct State {
    file: File,
    next_seq: u64,
    prev: String,
    poisoned: bool,
}

/// A thread-safe appender. Appends are serialised by a mutex, so records from many
/// threads form one chain. Reopening an existing file continues its chain.
pub struct AuditLog {
    path: PathBuf,
    fsync: Fsync,
    state: Mutex<State>,
}

impl std::fmt::Debug for AuditLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuditLog")
            .field("path", &self.path)
            .field("fsync", &self.fsync)
            .finish()
    }
}

impl AuditLog {
    /// Opens (creating if needed) the log at `path` and continues its chain.
    ///
    /// Only the last record is checked here (its hash and sequence number are needed to
    /// continue); run [`verify`] for the whole file.
    ///
    /// # Errors
    ///
    /// I/O errors, or [`AuditError::Corrupt`] when the last line is not a valid record
    /// (for example a line torn by a crash), because appending after it would hide it.
    pub fn open(path: impl AsRef<Path>, fsync: Fsync) -> Result<AuditLog, AuditError> {
        let path = path.as_ref().to_path_buf();
        let io = |source| AuditError::Io {
            path: path.clone(),
            error: source,
        };
        let mut file = OpenOptions::new()
            .create(true)
            .read(true)
            .append(true)
            .open(&path)
            .map_err(io)?;
        let (next_seq, prev) = last_record(&mut file, &path)?;
        Ok(AuditLog {
            path,
            fsync,
            state: Mutex::new(State {
                file,
                next_seq,
                prev,
                poisoned: false,
            }),
        })
    }

    /// The log file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The hash of the last record ([`GENESIS`] for an empty log): anchor it elsewhere to
    /// detect truncation.
    pub fn head(&self) -> String {
        match self.state.lock() {
            Ok(s) => s.prev.clone(),
            Err(p) => p.into_inner().prev.clone(),
        }
    }

    /// Appends one record whose `data` is `payload` serialised as JSON.
    ///
    /// # Errors
    ///
    /// Serialisation or I/O errors. After an I/O error the log refuses further appends
    /// ([`AuditError::Poisoned`]) because a partial line may have been written.
    pub fn append<T: Serialize + ?Sized>(&self, payload: &T) -> Result<Receipt, AuditError> {
        // Serialise outside the lock: it is the expensive part and touches no shared state.
        let data = serde_json::to_string(payload)?;
        let ts = now_rfc3339();
        let mut guard = match self.state.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        };
        if guard.poisoned {
            return Err(AuditError::Poisoned {
                path: self.path.clone(),
            });
        }
        let seq = guard.next_seq;
        let body = format!(
            "{{\"seq\":{seq},\"ts\":\"{ts}\",\"prev\":\"{}\",\"data\":{data}",
            guard.prev
        );
        let hash = record_hash(&guard.prev, &body);
        let line = format!("{body}{HASH_MARKER}{hash}\"}}\n");
        let write = guard.file.write_all(line.as_bytes()).and_then(|()| {
            if self.fsync == Fsync::Always {
                guard.file.sync_data()
            } else {
                Ok(())
            }
        });
        if let Err(source) = write {
            guard.poisoned = true;
            return Err(AuditError::Io {
                path: self.path.clone(),
                error: source,
            });
        }
        guard.next_seq = seq + 1;
        guard.prev.clone_from(&hash);
        Ok(Receipt { seq, hash })
    }

    /// Forces written records to stable storage.
    ///
    /// # Errors
    ///
    /// The `fsync` error.
    pub fn sync(&self) -> Result<(), AuditError> {
        let guard = match self.state.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        };
        guard.file.sync_data().map_err(|source| AuditError::Io {
            path: self.path.clone(),
            error: source,
        })
    }
}

impl Drop for AuditLog {
    fn drop(&mut self) {
        if let Ok(s) = self.state.get_mut() {
            let _ = s.file.sync_data();
        }
    }
}

fn record_hash(prev: &str, body: &str) -> String {
    let mut h = Sha256::new();
    h.update(prev.as_bytes());
    h.update(b"\n");
    h.update(body.as_bytes());
    h.update(b"}");
    hex::encode(h.finalize())
}

fn now_rfc3339() -> String {
    let now = time::OffsetDateTime::now_utc();
    now.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_else(|_| now.unix_timestamp().to_string())
}

/// Lines in `file` (the last one counts when unterminated), read in blocks.
fn line_count(file: &mut File) -> std::io::Result<u64> {
    file.seek(SeekFrom::Start(0))?;
    let (mut lines, mut last) = (0u64, b'\n');
    let mut block = vec![0u8; 64 * 1024];
    loop {
        let n = file.read(&mut block)?;
        if n == 0 {
            break;
        }
        lines += block[..n].iter().filter(|&&b| b == b'\n').count() as u64;
        last = block[n - 1];
    }
    Ok(lines + u64::from(last != b'\n'))
}

/// Reads the last line of an existing log and returns (next seq, last hash).
fn last_record(file: &mut File, path: &Path) -> Result<(u64, String), AuditError> {
    let io = |source| AuditError::Io {
        path: path.to_path_buf(),
        error: source,
    };
    let len = file.seek(SeekFrom::End(0)).map_err(io)?;
    if len == 0 {
        return Ok((0, GENESIS.to_string()));
    }
    // Read backwards in blocks until we hold the whole last line.
    let mut tail: Vec<u8> = Vec::new();
    let mut pos = len;
    loop {
        let step = pos.min(64 * 1024);
        pos -= step;
        file.seek(SeekFrom::Start(pos)).map_err(io)?;
        let mut block = vec![0u8; step as usize];
        file.read_exact(&mut block).map_err(io)?;
        block.extend_from_slice(&tail);
        tail = block;
        let body = tail.strip_suffix(b"\n").unwrap_or(&tail);
        if pos == 0 || body.contains(&b'\n') {
            break;
        }
    }
    let ends_with_newline = tail.last() == Some(&b'\n');
    let body = tail.strip_suffix(b"\n").unwrap_or(&tail);
    let start = body.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
    let last = &body[start..];
    // The last line's number is for the error message only: counting the lines
    // reads the whole log, so a healthy log (any size) opens in one tail read.
    let mut corrupt = |reason: String| {
        let line = line_count(file).unwrap_or(0);
        AuditError::Corrupt {
            path: path.to_path_buf(),
            line,
            reason,
        }
    };
    if !ends_with_newline {
        return Err(corrupt("last line is not terminated (torn write?)".into()));
    }
    let text = std::str::from_utf8(last).map_err(|_| corrupt("not UTF-8".into()))?;
    let rec = parse_line(text).map_err(|r| corrupt(r.to_string()))?;
    Ok((rec.seq + 1, rec.hash))
}

struct ParsedLine {
    seq: u64,
    prev: String,
    hash: String,
    computed: String,
}

fn parse_line(line: &str) -> Result<ParsedLine, BrokenReason> {
    let value: serde_json::Value = serde_json::from_str(line).map_err(|_| BrokenReason::BadJson)?;
    let seq = value
        .get("seq")
        .and_then(serde_json::Value::as_u64)
        .ok_or(BrokenReason::BadJson)?;
    let prev = value
        .get("prev")
        .and_then(serde_json::Value::as_str)
        .ok_or(BrokenReason::BadJson)?
        .to_string();
    let hash = value
        .get("hash")
        .and_then(serde_json::Value::as_str)
        .ok_or(BrokenReason::BadJson)?
        .to_string();
    if value.get("data").is_none() {
        return Err(BrokenReason::BadJson);
    }
    let cut = line.rfind(HASH_MARKER).ok_or(BrokenReason::BadJson)?;
    let computed = record_hash(&prev, &line[..cut]);
    Ok(ParsedLine {
        seq,
        prev,
        hash,
        computed,
    })
}

/// Why a record fails verification.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum BrokenReason {
    /// The line is not a JSON audit record (or not UTF-8).
    BadJson,
    /// The record's content does not match its own hash: it was edited.
    HashMismatch,
    /// `prev` is not the previous record's hash, though the sequence is intact.
    ChainMismatch,
    /// The sequence number jumps forward: records were deleted before this one.
    Deletion {
        /// The sequence number that was expected here.
        expected: u64,
        /// The sequence number found.
        found: u64,
    },
    /// The sequence number goes backwards or repeats: records were moved or duplicated.
    Reordering {
        /// The sequence number that was expected here.
        expected: u64,
        /// The sequence number found.
        found: u64,
    },
}

impl std::fmt::Display for BrokenReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            BrokenReason::BadJson => f.write_str("not a valid audit record (bad JSON)"),
            BrokenReason::HashMismatch => f.write_str("hash mismatch: the record was modified"),
            BrokenReason::ChainMismatch => {
                f.write_str("chain mismatch: prev is not the previous record's hash")
            }
            BrokenReason::Deletion { expected, found } => {
                write!(f, "deletion: expected seq {expected}, found {found} (records deleted or moved away before this line)")
            }
            BrokenReason::Reordering { expected, found } => {
                write!(f, "reordering: expected seq {expected}, found {found} (record moved or duplicated)")
            }
        }
    }
}

/// The first record that fails verification.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Broken {
    /// 1-based line number in the file.
    pub line: u64,
    /// Why it fails.
    pub reason: BrokenReason,
}

/// The result of [`verify`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct VerifyReport {
    /// Records that verified before the first broken one (all of them when intact).
    pub records: u64,
    /// The hash of the last verified record ([`GENESIS`] for an empty log).
    pub head: String,
    /// The first broken record, if any.
    pub broken: Option<Broken>,
}

impl VerifyReport {
    /// True when every record verified.
    pub fn is_ok(&self) -> bool {
        self.broken.is_none()
    }
}

/// Verifies a whole log file, stopping at the first broken record.
///
/// # Errors
///
/// Only I/O errors; a broken log is a successful verification with `broken` set.
pub fn verify(path: impl AsRef<Path>) -> Result<VerifyReport, AuditError> {
    let path = path.as_ref();
    let io = |source| AuditError::Io {
        path: path.to_path_buf(),
        error: source,
    };
    let file = File::open(path).map_err(io)?;
    verify_reader(BufReader::new(file)).map_err(io)
}

/// Verifies a log read from any reader (see [`verify`]).
///
/// # Errors
///
/// Read errors.
pub fn verify_reader<R: BufRead>(reader: R) -> Result<VerifyReport, std::io::Error> {
    let mut expected_seq = 0u64;
    let mut prev = GENESIS.to_string();
    for (index, raw) in reader.split(b'\n').enumerate() {
        let raw = raw?;
        let line_no = index as u64 + 1;
        let broken = |reason| VerifyReport {
            records: expected_seq,
            head: prev.clone(),
            broken: Some(Broken {
                line: line_no,
                reason,
            }),
        };
        let Ok(text) = std::str::from_utf8(&raw) else {
            return Ok(broken(BrokenReason::BadJson));
        };
        let rec = match parse_line(text) {
            Ok(r) => r,
            Err(reason) => return Ok(broken(reason)),
        };
        if rec.computed != rec.hash {
            return Ok(broken(BrokenReason::HashMismatch));
        }
        if rec.seq > expected_seq {
            return Ok(broken(BrokenReason::Deletion {
                expected: expected_seq,
                found: rec.seq,
            }));
        }
        if rec.seq < expected_seq {
            return Ok(broken(BrokenReason::Reordering {
                expected: expected_seq,
                found: rec.seq,
            }));
        }
        if rec.prev != prev {
            return Ok(broken(BrokenReason::ChainMismatch));
        }
        prev = rec.hash;
        expected_seq += 1;
    }
    Ok(VerifyReport {
        records: expected_seq,
        head: prev,
        broken: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn public_types_are_send_sync() {
        fn assert<T: Send + Sync>() {}
        assert::<AuditLog>();
        assert::<AuditError>();
        assert::<VerifyReport>();
    }

    #[test]
    fn record_hash_covers_prev() {
        assert_ne!(
            record_hash(GENESIS, "{\"a\":1"),
            record_hash(&"1".repeat(64), "{\"a\":1")
        );
    }
}
