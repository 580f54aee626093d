//! SQLite ledger: read-only connections, cached prepared statements, a progress handler
//! that interrupts a query past its deadline; all work on the blocking pool.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rusqlite::types::ValueRef;
use rusqlite::{Connection, OpenFlags};

use super::{SqlParam, SqlValue};
use crate::error::{Error, ErrorKind};
use crate::spec::QuerySpec;

struct Conn {
    conn: Connection,
    base: Instant,
    /// Deadline in nanoseconds since `base`; 0 = none. Read by the progress handler.
    deadline: Arc<AtomicU64>,
}

pub(crate) struct SqliteLedger {
    path: PathBuf,
    timeout: Duration,
    pool: Arc<Mutex<Vec<Conn>>>,
}

const POOL_MAX: usize = 8;

fn ledger_err(e: impl std::fmt::Display) -> Error {
    Error::new(ErrorKind::Ledger, format!("ledger unavailable: {e}"))
}

impl SqliteLedger {
    pub(crate) fn new(path: PathBuf, timeout: Duration) -> SqliteLedger {
        SqliteLedger {
            path,
            timeout,
            pool: Arc::new(Mutex::new(Vec::new())),
        }
    }

    fn open(path: &PathBuf) -> Result<Conn, Error> {
        // READ_ONLY: the ledger is never written through Warden, whatever the SQL says.
        let flags = OpenFlags::SQLITE_OPEN_READ_ONLY
            | OpenFlags::SQLITE_OPEN_NO_MUTEX
            | OpenFlags::SQLITE_OPEN_URI;
        let conn = Connection::open_with_flags(path, flags)
            .map_err(|e| ledger_err(format!("{}: {e}", path.display())))?;
        conn.busy_timeout(Duration::from_millis(500))
            .map_err(ledger_err)?;
        conn.pragma_update(None, "query_only", true)
            .map_err(ledger_err)?;
        conn.set_prepared_statement_cache_capacity(64);
        let base = Instant::now();
        let deadline = Arc::new(AtomicU64::new(0));
        let d = Arc::clone(&deadline);
        conn.progress_handler(
            1_000,
            Some(move || {
                let limit = d.load(Ordering::Relaxed);
                limit != 0 && base.elapsed().as_nanos() as u64 > limit
            }),
        );
        // Opening is lazy in SQLite: touch the schema so a missing/corrupt file fails here.
        conn.query_row("SELECT count(*) FROM sqlite_master", [], |_| Ok(()))
            .map_err(|e| ledger_err(format!("{}: {e}", path.display())))?;
        Ok(Conn {
            conn,
            base,
            deadline,
        })
    }

    async fn with_conn<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Conn) -> Result<T, Error> + Send + 'static,
    ) -> Result<T, Error> {
        let pool = Arc::clone(&self.pool);
        let path = self.path.clone();
        tokio::task::spawn_blocking(move || {
            let conn = pool.lock().ok().and_then(|mut p| p.pop());
            let conn = match conn {
                Some(c) => c,
                None => Self::open(&path)?,
            };
            let r = f(&conn);
            if let Ok(mut p) = pool.lock() {
                if p.len() < POOL_MAX {
                    p.push(conn);
                }
            }
            r
        })
        .await
        .map_err(|e| Error::new(ErrorKind::Ledger, format!("ledger task failed: {e}")))?
    }

    pub(crate) async fn query(
        &self,
        spec: &QuerySpec,
        params: Vec<SqlParam>,
    ) -> Result<Option<SqlValue>, Error> {
        let sql = spec.sql.clone();
        let name = spec.name.clone();
        let timeout = self.timeout;
        self.with_conn(move |c| {
            let deadline = c.base.elapsed() + timeout;
            c.deadline
                .store(deadline.as_nanos() as u64, Ordering::Relaxed);
            let r = run(&c.conn, &sql, &params);
            c.deadline.store(0, Ordering::Relaxed);
            r.map_err(|e| match e {
                rusqlite::Error::SqliteFailure(f, _)
                    if f.code == rusqlite::ErrorCode::OperationInterrupted =>
                {
                    Error::new(
                        ErrorKind::Ledger,
                        format!("ledger query {name} timed out after {timeout:?}"),
                    )
                }
                other => Error::new(
                    ErrorKind::Ledger,
                    format!("ledger query {name} failed: {other}"),
                ),
            })
        })
        .await
    }

    pub(crate) async fn check(
        &self,
        queries: &BTreeMap<String, QuerySpec>,
    ) -> Vec<(Option<String>, String)> {
        let qs: Vec<(String, String)> = queries
            .values()
            .map(|q| (q.name.clone(), q.sql.clone()))
            .collect();
        let r = self
            .with_conn(move |c| {
                let mut out = Vec::new();
                for (name, sql) in qs {
                    match c.conn.prepare(&sql) {
                        Ok(stmt) => {
                            if !stmt.readonly() {
                                out.push((Some(name), "query is not read-only".to_string()));
                            } else if stmt.column_count() == 0 {
                                out.push((Some(name), "query returns no column".to_string()));
                            }
                        }
                        Err(e) => out.push((Some(name), format!("does not prepare: {e}"))),
                    }
                }
                Ok(out)
            })
            .await;
        r.unwrap_or_else(|e| vec![(None, e.to_string())])
    }
}

fn run(conn: &Connection, sql: &str, params: &[SqlParam]) -> rusqlite::Result<Option<SqlValue>> {
    let mut stmt = conn.prepare_cached(sql)?;
    let expected = stmt.parameter_count();
    if expected != params.len() {
        return Err(rusqlite::Error::InvalidParameterCount(
            params.len(),
            expected,
        ));
    }
    // Parameters are written `$1`, `$2`… (PostgreSQL style) so one query serves both
    // databases; SQLite numbers distinct names by first appearance, so bind by name.
    for (i, p) in params.iter().enumerate() {
        let name = format!("${}", i + 1);
        let idx = stmt.parameter_index(&name)?.unwrap_or(i + 1);
        match p {
            SqlParam::Int(v) => stmt.raw_bind_parameter(idx, v)?,
            SqlParam::Text(v) => stmt.raw_bind_parameter(idx, v)?,
            SqlParam::Bool(v) => stmt.raw_bind_parameter(idx, v)?,
        }
    }
    let mut rows = stmt.raw_query();
    let Some(row) = rows.next()? else {
        return Ok(None);
    };
    Ok(match row.get_ref(0)? {
        ValueRef::Null => None,
        ValueRef::Integer(i) => Some(SqlValue::Int(i)),
        ValueRef::Text(t) => Some(SqlValue::Text(String::from_utf8_lossy(t).into_owned())),
        ValueRef::Real(_) | ValueRef::Blob(_) => {
            return Err(rusqlite::Error::InvalidColumnType(
                0,
                "result".into(),
                rusqlite::types::Type::Real,
            ))
        }
    })
}
