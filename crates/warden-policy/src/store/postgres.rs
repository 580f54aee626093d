//! PostgreSQL state store: a small connection pool; reservations run in one transaction
//! that first takes transaction-scoped advisory locks on the resource, the principal's
//! velocity bucket and the idempotency key (sorted, so no two transactions deadlock), then
//! re-checks and writes. Concurrent reservations on one resource are serialised by the
//! lock; reservations on different resources run in parallel.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{Mutex, Semaphore};
use tokio_postgres::types::{ToSql, Type};
use tokio_postgres::Client;

use super::{state_err, Cell, Outcome, Reservation, P, SCHEMA};
use super::{APPROVAL_CONSUME, HOLDS_SUM, HOLD_PUT, IDEM_GET, IDEM_PUT, VELOCITY_SUM};
use crate::error::Error;
use crate::ledger::postgres_connect;

const POOL_MAX: usize = 8;

pub(crate) struct PgStore {
    url: String,
    schema: Option<String>,
    idle: Mutex<Vec<Client>>,
    permits: Arc<Semaphore>,
    initialised: tokio::sync::OnceCell<()>,
}

fn pg_err(e: tokio_postgres::Error) -> Error {
    state_err(crate::ledger::pg_message(&e))
}

impl PgStore {
    pub(crate) fn new(url: String, schema: Option<String>) -> PgStore {
        PgStore {
            url,
            schema,
            idle: Mutex::new(Vec::new()),
            permits: Arc::new(Semaphore::new(POOL_MAX)),
            initialised: tokio::sync::OnceCell::new(),
        }
    }

    async fn client(&self) -> Result<(Client, tokio::sync::OwnedSemaphorePermit), Error> {
        let permit = Arc::clone(&self.permits)
            .acquire_owned()
            .await
            .map_err(|e| state_err(e.to_string()))?;
        loop {
            let c = self.idle.lock().await.pop();
            match c {
                Some(c) if !c.is_closed() => return Ok((c, permit)),
                Some(_) => continue,
                None => break,
            }
        }
        self.initialised
            .get_or_try_init(|| async {
                // Several processes may start at once: IF NOT EXISTS alone races in the
                // catalog, so creation is serialised by a transaction-scoped advisory lock.
                let c0 = postgres_connect(&self.url, None, Duration::from_secs(5), false)
                    .await
                    .map_err(state_err)?;
                let mut script = String::from("BEGIN; SELECT pg_advisory_xact_lock(7355608001); ");
                if let Some(s) = &self.schema {
                    script.push_str(&format!(
                        "CREATE SCHEMA IF NOT EXISTS \"{s}\"; SET LOCAL search_path TO \"{s}\"; "
                    ));
                }
                for stmt in SCHEMA {
                    script.push_str(stmt);
                    script.push_str("; ");
                }
                script.push_str("COMMIT;");
                c0.batch_execute(&script).await.map_err(pg_err)?;
                Ok::<(), Error>(())
            })
            .await?;
        let c = postgres_connect(
            &self.url,
            self.schema.as_deref(),
            Duration::from_secs(5),
            false,
        )
        .await
        .map_err(state_err)?;
        Ok((c, permit))
    }

    async fn give_back(&self, c: Client) {
        if !c.is_closed() {
            self.idle.lock().await.push(c);
        }
    }

    pub(crate) async fn query(
        &self,
        sql: &'static str,
        params: Vec<P>,
    ) -> Result<Vec<Vec<Cell>>, Error> {
        let (c, _permit) = self.client().await?;
        let r = query(&c, sql, &params).await;
        self.give_back(c).await;
        r.map_err(pg_err)
    }

    pub(crate) async fn execute(&self, sql: &'static str, params: Vec<P>) -> Result<u64, Error> {
        let (c, _permit) = self.client().await?;
        let r = execute(&c, sql, &params).await;
        self.give_back(c).await;
        r.map_err(pg_err)
    }

    pub(crate) async fn reserve(&self, r: Reservation) -> Result<Outcome, Error> {
        let (mut c, _permit) = self.client().await?;
        let out = reserve(&mut c, &r).await;
        self.give_back(c).await;
        out.map_err(pg_err)
    }
}

fn boxed(params: &[P], types: &[Type]) -> Vec<Box<dyn ToSql + Sync + Send>> {
    params
        .iter()
        .zip(types.iter().chain(std::iter::repeat(&Type::UNKNOWN)))
        .map(|(p, t)| -> Box<dyn ToSql + Sync + Send> {
            match (p, t) {
                (P::I(i), &Type::INT4) => Box::new(i32::try_from(*i).unwrap_or(i32::MAX)),
                (P::I(i), _) => Box::new(*i),
                (P::T(s), _) => Box::new(s.clone()),
            }
        })
        .collect()
}

async fn query<C: tokio_postgres::GenericClient>(
    c: &C,
    sql: &str,
    params: &[P],
) -> Result<Vec<Vec<Cell>>, tokio_postgres::Error> {
    let st = c.prepare(sql).await?;
    let b = boxed(params, st.params());
    let refs: Vec<&(dyn ToSql + Sync)> = b
        .iter()
        .map(|x| x.as_ref() as &(dyn ToSql + Sync))
        .collect();
    let rows = c.query(&st, &refs).await?;
    let mut out = Vec::with_capacity(rows.len());
    for row in rows {
        let mut cells = Vec::new();
        for (i, col) in row.columns().iter().enumerate() {
            let cell = match *col.type_() {
                Type::INT8 => row
                    .try_get::<_, Option<i64>>(i)?
                    .map_or(Cell::Null, Cell::I),
                Type::INT4 => row
                    .try_get::<_, Option<i32>>(i)?
                    .map_or(Cell::Null, |v| Cell::I(v.into())),
                _ => row
                    .try_get::<_, Option<String>>(i)?
                    .map_or(Cell::Null, Cell::T),
            };
            cells.push(cell);
        }
        out.push(cells);
    }
    Ok(out)
}

async fn execute<C: tokio_postgres::GenericClient>(
    c: &C,
    sql: &str,
    params: &[P],
) -> Result<u64, tokio_postgres::Error> {
    let st = c.prepare(sql).await?;
    let b = boxed(params, st.params());
    let refs: Vec<&(dyn ToSql + Sync)> = b
        .iter()
        .map(|x| x.as_ref() as &(dyn ToSql + Sync))
        .collect();
    c.execute(&st, &refs).await
}

async fn scalar<C: tokio_postgres::GenericClient>(
    c: &C,
    sql: &str,
    params: &[P],
) -> Result<i64, tokio_postgres::Error> {
    Ok(query(c, sql, params)
        .await?
        .first()
        .and_then(|r| r.first())
        .map_or(0, |x| match x {
            Cell::I(i) => *i,
            _ => 0,
        }))
}

async fn reserve(c: &mut Client, r: &Reservation) -> Result<Outcome, tokio_postgres::Error> {
    let tx = c.transaction().await?;
    for key in r.lock_keys() {
        tx.execute(
            "SELECT pg_advisory_xact_lock(hashtextextended($1, 0))",
            &[&key],
        )
        .await?;
    }
    if let Some((tool, key, _, _)) = &r.idempotency {
        let rows = query(&tx, IDEM_GET, &[P::T(tool.clone()), P::T(key.clone())]).await?;
        if let Some(row) = rows.first().filter(|r| r.len() >= 2) {
            return Ok(Outcome::Idempotent(row[0].text(), row[1].text()));
        }
    }
    if let Some((resource, expected)) = &r.expect_holds {
        let now = scalar(
            &tx,
            HOLDS_SUM,
            &[P::T(resource.clone()), P::I(r.now), P::I(r.posted_since)],
        )
        .await?;
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
        )
        .await?;
        if now != *expected {
            return Ok(Outcome::Stale);
        }
    }
    if let Some(id) = &r.consume_approval {
        if execute(&tx, APPROVAL_CONSUME, &[P::T(id.clone())]).await? == 0 {
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
        )
        .await?;
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
        )
        .await?;
    }
    tx.commit().await?;
    Ok(Outcome::Done)
}
