//! SQLite state store: WAL, a busy timeout, and reservations in `BEGIN IMMEDIATE`
//! transactions, which take the write lock before reading, so two processes (or two
//! connections of one process) can never both pass the same check.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rusqlite::types::ValueRef;
use rusqlite::{Connection, TransactionBehavior};

use super::{state_err, Cell, Outcome, Reservation, P, SCHEMA};
use super::{APPROVAL_CONSUME, HOLDS_SUM, HOLD_PUT, IDEM_GET, IDEM_PUT, VELOCITY_SUM};
use crate::error::Error;

pub(crate) struct SqliteStore {
    path: PathBuf,
    pool: Arc<Mutex<Vec<Connection>>>,
}

/// Held while a connection is set up (for every store of the process, as
/// two stores may share a file): two connections switching a new file to
/// WAL and creating its schema at once can get "database is locked" at
/// once, without the busy timeout applying.
static OPENING: Mutex<()> = Mutex::new(());

const POOL_MAX: usize = 8;

impl SqliteStore {
    pub(crate) fn new(path: PathBuf) -> SqliteStore {
        SqliteStore {
            path,
            pool: Arc::new(Mutex::new(Vec::new())),
        }
    }

    fn open(path: &PathBuf) -> Result<Connection, Error> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)
                .map_err(|e| state_err(format!("{}: {e}", dir.display())))?;
        }
        let conn =
            Connection::open(path).map_err(|e| state_err(format!("{}: {e}", path.display())))?;
        conn.busy_timeout(Duration::from_secs(10))
            .map_err(state_err)?;
        conn.pragma_update(None, "journal_mode", "WAL")
            .map_err(state_err)?;
        conn.pragma_update(None, "synchronous", "NORMAL")
            .map_err(state_err)?;
        conn.set_prepared_statement_cache_capacity(32);
        for stmt in SCHEMA {
            conn.execute_batch(stmt).map_err(state_err)?;
        }
        Ok(conn)
    }

    async fn with_conn<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Connection) -> Result<T, Error> + Send + 'static,
    ) -> Result<T, Error> {
        let pool = Arc::clone(&self.pool);
        let path = self.path.clone();
        tokio::task::spawn_blocking(move || {
            let conn = pool.lock().ok().and_then(|mut p| p.pop());
            let mut conn = match conn {
                Some(c) => c,
                None => {
                    let _one_at_a_time = OPENING.lock();
                    Self::open(&path)?
                }
            };
            let r = f(&mut conn);
            if let Ok(mut p) = pool.lock() {
                if p.len() < POOL_MAX {
                    p.push(conn);
                }
            }
            r
        })
        .await
        .map_err(|e| state_err(format!("task failed: {e}")))?
    }

    pub(crate) async fn query(
        &self,
        sql: &'static str,
        params: Vec<P>,
    ) -> Result<Vec<Vec<Cell>>, Error> {
        self.with_conn(move |c| query(c, sql, &params).map_err(state_err))
            .await
    }

    pub(crate) async fn execute(&self, sql: &'static str, params: Vec<P>) -> Result<u64, Error> {
        self.with_conn(move |c| execute(c, sql, &params).map_err(state_err))
            .await
    }

    pub(crate) async fn reserve(&self, r: Reservation) -> Result<Outcome, Error> {
        self.with_conn(move |c| reserve(c, &r).map_err(state_err))
            .await
    }
}

fn bind(stmt: &mut rusqlite::CachedStatement<'_>, params: &[P]) -> rusqlite::Result<()> {
    for (i, p) in params.iter().enumerate() {
        let idx = stmt
            .parameter_index(&format!("${}", i + 1))?
            .unwrap_or(i + 1);
        match p {
            P::I(v) => stmt.raw_bind_parameter(idx, v)?,
            P::T(v) => stmt.raw_bind_parameter(idx, v)?,
        }
    }
    Ok(())
}

fn query(c: &Connection, sql: &str, params: &[P]) -> rusqlite::Result<Vec<Vec<Cell>>> {
    let mut stmt = c.prepare_cached(sql)?;
    bind(&mut stmt, params)?;
    let n = stmt.column_count();
    let mut rows = stmt.raw_query();
    let mut out = Vec::new();
    while let Some(row) = rows.next()? {
        let mut cells = Vec::with_capacity(n);
        for i in 0..n {
            cells.push(match row.get_ref(i)? {
                ValueRef::Integer(v) => Cell::I(v),
                ValueRef::Text(t) => Cell::T(String::from_utf8_lossy(t).into_owned()),
                _ => Cell::Null,
            });
        }
        out.push(cells);
    }
    Ok(out)
}

fn execute(c: &Connection, sql: &str, params: &[P]) -> rusqlite::Result<u64> {
    let mut stmt = c.prepare_cached(sql)?;
    bind(&mut stmt, params)?;
    Ok(stmt.raw_execute()? as u64)
}

fn scalar(c: &Connection, sql: &str, params: &[P]) -> rusqlite::Result<i64> {
    Ok(query(c, sql, params)?
        .first()
        .and_then(|r| r.first())
        .map_or(0, |x| match x {
            Cell::I(i) => *i,
            _ => 0,
        }))
}

fn reserve(c: &mut Connection, r: &Reservation) -> rusqlite::Result<Outcome> {
    let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
    if let Some((tool, key, _, _)) = &r.idempotency {
        let rows = query(&tx, IDEM_GET, &[P::T(tool.clone()), P::T(key.clone())])?;
        if let Some(row) = rows.first().filter(|r| r.len() >= 2) {
            let (h, v) = (cell_text(&row[0]), cell_text(&row[1]));
            return Ok(Outcome::Idempotent(h, v));
        }
    }
    if let Some((resource, expected)) = &r.expect_holds {
        let now = scalar(
            &tx,
            HOLDS_SUM,
            &[P::T(resource.clone()), P::I(r.now), P::I(r.posted_since)],
        )?;
        if now != *expected {
            return Ok(Outcome::Stale);
        }
    }
    if let Some((p, t, cur, since, expected)) = &r.expect_velocity {
        let now = scalar(
            &tx,
            VELOCITY_SUM,
            &[
                P::T(p.clone()),
                P::T(t.clone()),
                P::T(cur.clone()),
                P::I(*since),
                P::I(r.now),
            ],
        )?;
        if now != *expected {
            return Ok(Outcome::Stale);
        }
    }
    if let Some(id) = &r.consume_approval {
        if execute(&tx, APPROVAL_CONSUME, &[P::T(id.clone())])? == 0 {
            return Ok(Outcome::Stale);
        }
    }
    if let Some(h) = &r.hold {
        execute(
            &tx,
            HOLD_PUT,
            &[
                P::T(h.id.clone()),
                P::T(h.tool.clone()),
                P::T(h.resource.clone()),
                P::T(h.principal.clone()),
                P::T(h.currency.clone()),
                P::I(h.amount_minor),
                P::I(h.created_at_ms),
                P::I(h.expires_at_ms),
            ],
        )?;
    }
    if let Some((tool, key, hash, verdict)) = &r.idempotency {
        execute(
            &tx,
            IDEM_PUT,
            &[
                P::T(tool.clone()),
                P::T(key.clone()),
                P::T(hash.clone()),
                P::T(verdict.clone()),
                P::I(r.now),
            ],
        )?;
    }
    tx.commit()?;
    Ok(Outcome::Done)
}

fn cell_text(c: &Cell) -> String {
    match c {
        Cell::T(s) => s.clone(),
        Cell::I(i) => i.to_string(),
        Cell::Null => String::new(),
    }
}
