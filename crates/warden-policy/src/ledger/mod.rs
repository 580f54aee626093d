//! The ledger: named, read-only, parameterised SQL queries against SQLite (embedded
//! default) or PostgreSQL (production). Parameters are always bound, never spliced.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use crate::error::{Error, ErrorKind};
use crate::spec::{QuerySpec, Returns};

mod postgres;
pub(crate) use postgres::{connect as postgres_connect, db_message as pg_message};
mod sqlite;

/// A bound query parameter.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) enum SqlParam {
    Int(i64),
    Text(String),
    Bool(bool),
}

/// A query result (first column of the first row).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum SqlValue {
    Int(i64),
    Text(String),
    Bool(bool),
}

/// Where a database lives.
#[derive(Clone, Debug)]
pub(crate) enum DbUrl {
    Sqlite(PathBuf),
    Postgres(String),
}

impl DbUrl {
    /// `sqlite:PATH` (relative to `base`), a bare path, or `postgres://…`/`postgresql://…`.
    pub(crate) fn parse(url: &str, base: Option<&std::path::Path>) -> DbUrl {
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            return DbUrl::Postgres(url.to_string());
        }
        let path = url
            .strip_prefix("sqlite://")
            .or_else(|| url.strip_prefix("sqlite:"))
            .unwrap_or(url);
        let p = PathBuf::from(path);
        match base {
            Some(b) if p.is_relative() => DbUrl::Sqlite(b.join(p)),
            _ => DbUrl::Sqlite(p),
        }
    }
}

pub(crate) struct Ledger {
    backend: Backend,
    queries: Arc<BTreeMap<String, QuerySpec>>,
}

enum Backend {
    Sqlite(sqlite::SqliteLedger),
    Postgres(postgres::PgLedger),
}

impl Ledger {
    /// Configures a ledger; connects lazily, so a ledger that is down at start makes
    /// verdicts `error` instead of stopping the caller from starting.
    pub(crate) fn new(
        url: DbUrl,
        schema: Option<String>,
        timeout: Duration,
        queries: Arc<BTreeMap<String, QuerySpec>>,
    ) -> Ledger {
        let backend = match url {
            DbUrl::Sqlite(path) => Backend::Sqlite(sqlite::SqliteLedger::new(path, timeout)),
            DbUrl::Postgres(u) => Backend::Postgres(postgres::PgLedger::new(u, schema, timeout)),
        };
        Ledger { backend, queries }
    }

    /// Runs the named query with bound parameters.
    pub(crate) async fn query(
        &self,
        name: &str,
        params: Vec<SqlParam>,
    ) -> Result<Option<SqlValue>, Error> {
        let spec = self
            .queries
            .get(name)
            .ok_or_else(|| Error::new(ErrorKind::Ledger, format!("unknown ledger query {name}")))?;
        let v = match &self.backend {
            Backend::Sqlite(s) => s.query(spec, params).await?,
            Backend::Postgres(p) => p.query(spec, params).await?,
        };
        match (&v, spec.returns) {
            (None, _)
            | (Some(SqlValue::Int(_)), Returns::Integer)
            | (Some(SqlValue::Text(_)), Returns::String)
            | (Some(SqlValue::Bool(_)), Returns::Bool) => Ok(v),
            // SQLite has no boolean type: 0/1 integers are its booleans.
            (Some(SqlValue::Int(i)), Returns::Bool) => Ok(Some(SqlValue::Bool(*i != 0))),
            _ => Err(Error::new(
                ErrorKind::Ledger,
                format!(
                    "ledger query {name} returned a value that is not {:?}",
                    spec.returns
                ),
            )),
        }
    }

    /// Prepares every query against the real database: (query name, problem) for each
    /// that fails, or one `(None, problem)` when the ledger cannot be reached.
    pub(crate) async fn check(&self) -> Vec<(Option<String>, String)> {
        match &self.backend {
            Backend::Sqlite(s) => s.check(&self.queries).await,
            Backend::Postgres(p) => p.check(&self.queries).await,
        }
    }
}
