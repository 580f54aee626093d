//! The built-in demo: `policies/demo.toml` and the demo ledger, compiled into the binary
//! so `warden check-call` works on a fresh machine.

use std::path::PathBuf;

use rusqlite::Connection;
use sha2::{Digest, Sha256};

use crate::error::{Error, ErrorKind};
use crate::policy::cache_dir;

/// The demo policy source (`policies/demo.toml`).
pub const DEMO_POLICY: &str = include_str!("../../../policies/demo.toml");
/// The ledger schema (`policies/ledger/schema.sql`), portable SQLite/PostgreSQL.
pub const LEDGER_SCHEMA_SQL: &str = include_str!("../../../policies/ledger/schema.sql");
/// The demo ledger rows (`policies/ledger/demo.sql`), portable SQLite/PostgreSQL.
pub const LEDGER_DEMO_SQL: &str = include_str!("../../../policies/ledger/demo.sql");

/// Creates (once) the demo SQLite ledger in the cache directory and returns its path.
/// The file name carries a hash of the SQL, so an updated demo never reuses a stale file.
///
/// # Errors
///
/// When the cache directory or the file cannot be written.
pub fn demo_ledger_path() -> Result<PathBuf, Error> {
    let mut h = Sha256::new();
    h.update(LEDGER_SCHEMA_SQL.as_bytes());
    h.update(LEDGER_DEMO_SQL.as_bytes());
    let tag = hex::encode(&h.finalize()[..6]);
    let dir = cache_dir();
    let path = dir.join(format!("demo-ledger-{tag}.sqlite"));
    if path.exists() {
        return Ok(path);
    }
    let io = |e: std::io::Error| Error::new(ErrorKind::Io, format!("{}: {e}", dir.display()));
    std::fs::create_dir_all(&dir).map_err(io)?;
    // Build under a unique name, then rename: concurrent first runs never see half a file.
    let tmp = dir.join(format!(
        ".demo-ledger-{tag}-{}.tmp",
        uuid::Uuid::new_v4().simple()
    ));
    let build = || -> rusqlite::Result<()> {
        let conn = Connection::open(&tmp)?;
        conn.execute_batch(LEDGER_SCHEMA_SQL)?;
        conn.execute_batch(LEDGER_DEMO_SQL)?;
        Ok(())
    };
    if let Err(e) = build() {
        let _ = std::fs::remove_file(&tmp);
        return Err(Error::new(
            ErrorKind::Ledger,
            format!("cannot build the demo ledger: {e}"),
        ));
    }
    std::fs::rename(&tmp, &path).map_err(io)?;
    Ok(path)
}
