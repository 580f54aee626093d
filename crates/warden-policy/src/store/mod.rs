//! Warden's own state: holds (reservations), idempotency records, approval requests.
//! SQLite by default, PostgreSQL in production. The same SQL text serves both
//! (`$1`-style parameters, `BIGINT`/`TEXT` columns, times in Unix milliseconds).

use serde::{Deserialize, Serialize};

use crate::error::{Error, ErrorKind};
use crate::ledger::DbUrl;

mod postgres;
mod sqlite;

pub(crate) const SCHEMA: &[&str] = &[
    "CREATE TABLE IF NOT EXISTS warden_holds (
        id TEXT PRIMARY KEY, tool TEXT NOT NULL, resource TEXT NOT NULL, principal TEXT NOT NULL,
        currency TEXT NOT NULL, amount_minor BIGINT NOT NULL, status TEXT NOT NULL,
        created_at BIGINT NOT NULL, expires_at BIGINT NOT NULL, updated_at BIGINT NOT NULL)",
    "CREATE INDEX IF NOT EXISTS warden_holds_resource ON warden_holds (resource, status)",
    "CREATE INDEX IF NOT EXISTS warden_holds_principal ON warden_holds (principal, tool, currency, created_at)",
    "CREATE TABLE IF NOT EXISTS warden_idempotency (
        tool TEXT NOT NULL, idem_key TEXT NOT NULL, args_hash TEXT NOT NULL, verdict TEXT NOT NULL,
        created_at BIGINT NOT NULL, PRIMARY KEY (tool, idem_key))",
    "CREATE TABLE IF NOT EXISTS warden_approvals (
        id TEXT PRIMARY KEY, tool TEXT NOT NULL, principal TEXT NOT NULL, args_hash TEXT NOT NULL,
        args TEXT NOT NULL, status TEXT NOT NULL, created_at BIGINT NOT NULL,
        decided_at BIGINT, approver TEXT)",
    "CREATE UNIQUE INDEX IF NOT EXISTS warden_approvals_pending ON warden_approvals (tool, principal, args_hash) WHERE status = 'pending'",
];

/// Active = held and not expired, or posted recently enough that the ledger may not show
/// it yet. Params: $1 resource, $2 now, $3 posted_since.
pub(crate) const HOLDS_SUM: &str = "SELECT CAST(COALESCE(SUM(amount_minor), 0) AS BIGINT) FROM warden_holds
    WHERE resource = $1 AND ((status = 'held' AND expires_at > $2) OR (status = 'posted' AND updated_at > $3))";

/// Params: $1 principal, $2 tool, $3 currency, $4 since, $5 now.
pub(crate) const VELOCITY_SUM: &str =
    "SELECT CAST(COALESCE(SUM(amount_minor), 0) AS BIGINT) FROM warden_holds
    WHERE principal = $1 AND tool = $2 AND currency = $3 AND created_at > $4
      AND (status = 'posted' OR (status = 'held' AND expires_at > $5))";

pub(crate) const IDEM_GET: &str =
    "SELECT args_hash, verdict FROM warden_idempotency WHERE tool = $1 AND idem_key = $2";
pub(crate) const IDEM_PUT: &str =
    "INSERT INTO warden_idempotency (tool, idem_key, args_hash, verdict, created_at) VALUES ($1, $2, $3, $4, $5)";
pub(crate) const HOLD_PUT: &str = "INSERT INTO warden_holds (id, tool, resource, principal, currency, amount_minor, status, created_at, expires_at, updated_at)
    VALUES ($1, $2, $3, $4, $5, $6, 'held', $7, $8, $7)";
pub(crate) const HOLD_GET: &str = "SELECT id, tool, resource, principal, currency, amount_minor, status, created_at, expires_at FROM warden_holds WHERE id = $1";
/// Params: $1 new status, $2 now, $3 id.
pub(crate) const HOLD_MOVE: &str = "UPDATE warden_holds SET status = $1, updated_at = $2 WHERE id = $3 AND status = 'held' AND expires_at > $2";
pub(crate) const HOLD_EXPIRE: &str = "UPDATE warden_holds SET status = 'expired', updated_at = $1 WHERE status = 'held' AND expires_at <= $1";
pub(crate) const APPROVAL_CONSUME: &str =
    "UPDATE warden_approvals SET status = 'consumed' WHERE id = $1 AND status = 'approved'";
/// Params: $1 tool, $2 principal, $3 args_hash, $4 created after.
pub(crate) const APPROVAL_FIND: &str = "SELECT id, tool, principal, args_hash, args, status, created_at, decided_at, approver FROM warden_approvals
    WHERE tool = $1 AND principal = $2 AND args_hash = $3 AND created_at > $4 AND status IN ('pending', 'approved', 'denied')
    ORDER BY created_at DESC";
pub(crate) const APPROVAL_PUT: &str = "INSERT INTO warden_approvals (id, tool, principal, args_hash, args, status, created_at)
    VALUES ($1, $2, $3, $4, $5, 'pending', $6) ON CONFLICT (tool, principal, args_hash) WHERE status = 'pending' DO NOTHING";
pub(crate) const APPROVAL_GET: &str =
    "SELECT id, tool, principal, args_hash, args, status, created_at, decided_at, approver FROM warden_approvals WHERE id = $1";
/// Params: $1 new status, $2 now, $3 approver, $4 id.
pub(crate) const APPROVAL_DECIDE: &str =
    "UPDATE warden_approvals SET status = $1, decided_at = $2, approver = $3 WHERE id = $4 AND status = 'pending'";

/// A parameter for the state store.
#[derive(Clone, Debug)]
pub(crate) enum P {
    I(i64),
    T(String),
}

/// A cell read back.
#[derive(Clone, Debug)]
pub(crate) enum Cell {
    Null,
    I(i64),
    T(String),
}

impl Cell {
    fn int(&self) -> i64 {
        match self {
            Cell::I(i) => *i,
            _ => 0,
        }
    }
    fn text(&self) -> String {
        match self {
            Cell::T(s) => s.clone(),
            Cell::I(i) => i.to_string(),
            Cell::Null => String::new(),
        }
    }
    fn opt_int(&self) -> Option<i64> {
        match self {
            Cell::I(i) => Some(*i),
            _ => None,
        }
    }
    fn opt_text(&self) -> Option<String> {
        match self {
            Cell::T(s) => Some(s.clone()),
            _ => None,
        }
    }
}

/// A hold (reservation) on an amount.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hold {
    /// Hold id (returned in the verdict as `hold_id`).
    pub id: String,
    /// The tool whose call placed it.
    pub tool: String,
    /// The resource it reserves against (e.g. the order id).
    pub resource: String,
    /// Who placed it.
    pub principal: String,
    /// ISO 4217 currency.
    pub currency: String,
    /// Amount in minor units.
    pub amount_minor: i64,
    /// `held`, `posted`, `voided` or `expired`.
    pub status: String,
    /// Creation time, Unix milliseconds.
    pub created_at_ms: i64,
    /// Expiry time, Unix milliseconds (a `held` hold stops counting after it).
    pub expires_at_ms: i64,
}

impl Hold {
    fn from_row(r: &[Cell]) -> Option<Hold> {
        if r.len() < 9 {
            return None;
        }
        Some(Hold {
            id: r[0].text(),
            tool: r[1].text(),
            resource: r[2].text(),
            principal: r[3].text(),
            currency: r[4].text(),
            amount_minor: r[5].int(),
            status: r[6].text(),
            created_at_ms: r[7].int(),
            expires_at_ms: r[8].int(),
        })
    }
}

/// An approval request for a call above its approval threshold, bound to the exact
/// normalised arguments by their hash.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Approval {
    /// Approval request id (returned in the verdict as `approval_id`).
    pub id: String,
    /// The tool.
    pub tool: String,
    /// Who asked.
    pub principal: String,
    /// SHA-256 of the canonical normalised arguments.
    pub args_hash: String,
    /// The normalised arguments, as JSON, for the approver to read.
    pub args: serde_json::Value,
    /// `pending`, `approved`, `denied` or `consumed`.
    pub status: String,
    /// Creation time, Unix milliseconds.
    pub created_at_ms: i64,
    /// Decision time, Unix milliseconds.
    pub decided_at_ms: Option<i64>,
    /// Who decided.
    pub approver: Option<String>,
}

impl Approval {
    fn from_row(r: &[Cell]) -> Option<Approval> {
        if r.len() < 9 {
            return None;
        }
        Some(Approval {
            id: r[0].text(),
            tool: r[1].text(),
            principal: r[2].text(),
            args_hash: r[3].text(),
            args: serde_json::from_str(&r[4].text()).unwrap_or(serde_json::Value::Null),
            status: r[5].text(),
            created_at_ms: r[6].int(),
            decided_at_ms: r[7].opt_int(),
            approver: r[8].opt_text(),
        })
    }
}

/// Everything the reservation transaction re-checks and writes.
#[derive(Clone, Debug, Default)]
pub(crate) struct Reservation {
    pub now: i64,
    pub posted_since: i64,
    /// (resource, the holds sum the verdict was computed with).
    pub expect_holds: Option<(String, i64)>,
    /// (principal, tool, currency, since, the velocity sum the verdict was computed with).
    pub expect_velocity: Option<(String, String, String, i64, i64)>,
    pub hold: Option<Hold>,
    /// (tool, key, args hash, verdict JSON).
    pub idempotency: Option<(String, String, String, String)>,
    pub consume_approval: Option<String>,
}

impl Reservation {
    /// Advisory lock keys, sorted so every transaction takes them in the same order.
    pub(crate) fn lock_keys(&self) -> Vec<String> {
        let mut keys = Vec::new();
        if let Some((r, _)) = &self.expect_holds {
            keys.push(format!("hold:{r}"));
        }
        if let Some((p, t, c, _, _)) = &self.expect_velocity {
            keys.push(format!("velocity:{p}:{t}:{c}"));
        }
        if let Some((t, k, _, _)) = &self.idempotency {
            keys.push(format!("idem:{t}:{k}"));
        }
        keys.sort();
        keys
    }
}

/// The reservation's result.
#[derive(Debug)]
pub(crate) enum Outcome {
    /// Written.
    Done,
    /// A concurrent call changed what the verdict was computed from: evaluate again.
    Stale,
    /// The idempotency key is already recorded: (args hash, verdict JSON).
    Idempotent(String, String),
}

pub(crate) enum Store {
    Sqlite(sqlite::SqliteStore),
    Postgres(postgres::PgStore),
}

fn state_err(e: impl std::fmt::Display) -> Error {
    Error::new(ErrorKind::State, format!("state store unavailable: {e}"))
}

impl Store {
    pub(crate) fn new(url: DbUrl, schema: Option<String>) -> Store {
        match url {
            DbUrl::Sqlite(p) => Store::Sqlite(sqlite::SqliteStore::new(p)),
            DbUrl::Postgres(u) => Store::Postgres(postgres::PgStore::new(u, schema)),
        }
    }

    async fn query(&self, sql: &'static str, params: Vec<P>) -> Result<Vec<Vec<Cell>>, Error> {
        match self {
            Store::Sqlite(s) => s.query(sql, params).await,
            Store::Postgres(p) => p.query(sql, params).await,
        }
    }

    async fn execute(&self, sql: &'static str, params: Vec<P>) -> Result<u64, Error> {
        match self {
            Store::Sqlite(s) => s.execute(sql, params).await,
            Store::Postgres(p) => p.execute(sql, params).await,
        }
    }

    async fn scalar(&self, sql: &'static str, params: Vec<P>) -> Result<i64, Error> {
        let rows = self.query(sql, params).await?;
        Ok(rows.first().and_then(|r| r.first()).map_or(0, Cell::int))
    }

    pub(crate) async fn holds_sum(
        &self,
        resource: &str,
        now: i64,
        posted_since: i64,
    ) -> Result<i64, Error> {
        self.scalar(
            HOLDS_SUM,
            vec![P::T(resource.into()), P::I(now), P::I(posted_since)],
        )
        .await
    }

    pub(crate) async fn velocity_sum(
        &self,
        principal: &str,
        tool: &str,
        currency: &str,
        since: i64,
        now: i64,
    ) -> Result<i64, Error> {
        self.scalar(
            VELOCITY_SUM,
            vec![
                P::T(principal.into()),
                P::T(tool.into()),
                P::T(currency.into()),
                P::I(since),
                P::I(now),
            ],
        )
        .await
    }

    pub(crate) async fn idempotency_get(
        &self,
        tool: &str,
        key: &str,
    ) -> Result<Option<(String, String)>, Error> {
        let rows = self
            .query(IDEM_GET, vec![P::T(tool.into()), P::T(key.into())])
            .await?;
        Ok(rows
            .first()
            .filter(|r| r.len() >= 2)
            .map(|r| (r[0].text(), r[1].text())))
    }

    pub(crate) async fn reserve(&self, r: Reservation) -> Result<Outcome, Error> {
        match self {
            Store::Sqlite(s) => s.reserve(r).await,
            Store::Postgres(p) => p.reserve(r).await,
        }
    }

    pub(crate) async fn approval_find(
        &self,
        tool: &str,
        principal: &str,
        hash: &str,
        after: i64,
    ) -> Result<Option<Approval>, Error> {
        let rows = self
            .query(
                APPROVAL_FIND,
                vec![
                    P::T(tool.into()),
                    P::T(principal.into()),
                    P::T(hash.into()),
                    P::I(after),
                ],
            )
            .await?;
        // Prefer a decision over a pending request.
        let all: Vec<Approval> = rows.iter().filter_map(|r| Approval::from_row(r)).collect();
        Ok(all
            .iter()
            .find(|a| a.status != "pending")
            .or_else(|| all.first())
            .cloned())
    }

    pub(crate) async fn approval_request(
        &self,
        tool: &str,
        principal: &str,
        hash: &str,
        args: &str,
        now: i64,
        after: i64,
    ) -> Result<Approval, Error> {
        let id = format!("apr_{}", uuid::Uuid::new_v4().simple());
        self.execute(
            APPROVAL_PUT,
            vec![
                P::T(id),
                P::T(tool.into()),
                P::T(principal.into()),
                P::T(hash.into()),
                P::T(args.into()),
                P::I(now),
            ],
        )
        .await?;
        // Either ours or the pending request a concurrent call created first.
        self.approval_find(tool, principal, hash, after)
            .await?
            .ok_or_else(|| Error::new(ErrorKind::State, "approval request vanished"))
    }

    pub(crate) async fn approval_get(&self, id: &str) -> Result<Approval, Error> {
        let rows = self.query(APPROVAL_GET, vec![P::T(id.into())]).await?;
        rows.first()
            .and_then(|r| Approval::from_row(r))
            .ok_or_else(|| Error::new(ErrorKind::NotFound, format!("no approval request {id}")))
    }

    pub(crate) async fn approval_decide(
        &self,
        id: &str,
        approve: bool,
        approver: &str,
        now: i64,
    ) -> Result<Approval, Error> {
        let status = if approve { "approved" } else { "denied" };
        let n = self
            .execute(
                APPROVAL_DECIDE,
                vec![
                    P::T(status.into()),
                    P::I(now),
                    P::T(approver.into()),
                    P::T(id.into()),
                ],
            )
            .await?;
        let a = self.approval_get(id).await?;
        if n == 0 {
            return Err(Error::new(
                ErrorKind::Conflict,
                format!("approval request {id} is already {}", a.status),
            ));
        }
        Ok(a)
    }

    pub(crate) async fn hold_get(&self, id: &str) -> Result<Hold, Error> {
        let rows = self.query(HOLD_GET, vec![P::T(id.into())]).await?;
        rows.first()
            .and_then(|r| Hold::from_row(r))
            .ok_or_else(|| Error::new(ErrorKind::NotFound, format!("no hold {id}")))
    }

    pub(crate) async fn hold_move(&self, id: &str, to: &str, now: i64) -> Result<Hold, Error> {
        let n = self
            .execute(HOLD_MOVE, vec![P::T(to.into()), P::I(now), P::T(id.into())])
            .await?;
        let h = self.hold_get(id).await?;
        if n == 0 {
            let state = if h.status == "held" {
                "expired"
            } else {
                h.status.as_str()
            };
            return Err(Error::new(
                ErrorKind::Conflict,
                format!("hold {id} is {state}, cannot become {to}"),
            ));
        }
        Ok(h)
    }

    pub(crate) async fn expire(&self, now: i64) -> Result<u64, Error> {
        self.execute(HOLD_EXPIRE, vec![P::I(now)]).await
    }
}
