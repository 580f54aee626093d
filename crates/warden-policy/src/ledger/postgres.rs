//! PostgreSQL ledger: one connection in a read-only session (`default_transaction_read_only`),
//! a server-side `statement_timeout`, every query prepared once per connection, and a
//! reconnect when the connection drops.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Mutex;
use tokio_postgres::types::{ToSql, Type};
use tokio_postgres::{Client, NoTls, Statement};

use super::{SqlParam, SqlValue};
use crate::error::{Error, ErrorKind};
use crate::spec::QuerySpec;

struct Session {
    client: Arc<Client>,
    statements: HashMap<String, Statement>,
}

pub(crate) struct PgLedger {
    url: String,
    schema: Option<String>,
    timeout: Duration,
    session: Mutex<Option<Session>>,
}

fn ledger_err(e: impl std::fmt::Display) -> Error {
    Error::new(ErrorKind::Ledger, format!("ledger unavailable: {e}"))
}

/// Connects with a deadline and applies the session settings that make it read-only.
pub(crate) async fn connect(
    url: &str,
    schema: Option<&str>,
    timeout: Duration,
    read_only: bool,
) -> Result<Client, String> {
    let mut config: tokio_postgres::Config = url
        .parse()
        .map_err(|e| format!("bad PostgreSQL URL: {e}"))?;
    config.connect_timeout(timeout.max(Duration::from_secs(1)));
    let (client, connection) =
        tokio::time::timeout(timeout.max(Duration::from_secs(1)), config.connect(NoTls))
            .await
            .map_err(|_| "connect timed out".to_string())?
            .map_err(|e| e.to_string())?;
    tokio::spawn(async move {
        // Ends when the server closes the connection; the client then reports is_closed().
        let _ = connection.await;
    });
    let mut setup = format!("SET statement_timeout = {}; ", timeout.as_millis().max(1));
    if read_only {
        setup.push_str("SET default_transaction_read_only = on; ");
    }
    if let Some(s) = schema {
        // `s` is checked to be a plain identifier when the policy loads.
        setup.push_str(&format!("SET search_path TO \"{s}\"; "));
    }
    client
        .batch_execute(&setup)
        .await
        .map_err(|e| e.to_string())?;
    Ok(client)
}

impl PgLedger {
    pub(crate) fn new(url: String, schema: Option<String>, timeout: Duration) -> PgLedger {
        PgLedger {
            url,
            schema,
            timeout,
            session: Mutex::new(None),
        }
    }

    async fn statement(&self, spec: &QuerySpec) -> Result<(Arc<Client>, Statement), Error> {
        let mut guard = self.session.lock().await;
        if guard.as_ref().is_some_and(|s| s.client.is_closed()) {
            *guard = None;
        }
        if guard.is_none() {
            let client = connect(&self.url, self.schema.as_deref(), self.timeout, true)
                .await
                .map_err(ledger_err)?;
            *guard = Some(Session {
                client: Arc::new(client),
                statements: HashMap::new(),
            });
        }
        let Some(session) = guard.as_mut() else {
            return Err(ledger_err("no session"));
        };
        if let Some(st) = session.statements.get(&spec.name) {
            return Ok((Arc::clone(&session.client), st.clone()));
        }
        let st = session.client.prepare(&spec.sql).await.map_err(|e| {
            Error::new(
                ErrorKind::Ledger,
                format!(
                    "ledger query {} does not prepare: {}",
                    spec.name,
                    db_message(&e)
                ),
            )
        })?;
        session.statements.insert(spec.name.clone(), st.clone());
        Ok((Arc::clone(&session.client), st))
    }

    pub(crate) async fn query(
        &self,
        spec: &QuerySpec,
        params: Vec<SqlParam>,
    ) -> Result<Option<SqlValue>, Error> {
        let (client, st) = self.statement(spec).await?;
        let types = st.params();
        if types.len() != params.len() {
            return Err(Error::new(
                ErrorKind::Ledger,
                format!(
                    "ledger query {} takes {} parameter(s), the rule passes {}",
                    spec.name,
                    types.len(),
                    params.len()
                ),
            ));
        }
        let mut boxed: Vec<Box<dyn ToSql + Sync + Send>> = Vec::with_capacity(params.len());
        for (p, ty) in params.into_iter().zip(types) {
            boxed.push(to_sql(p, ty).map_err(|m| {
                Error::new(
                    ErrorKind::Ledger,
                    format!("ledger query {}: {m}", spec.name),
                )
            })?);
        }
        let refs: Vec<&(dyn ToSql + Sync)> = boxed
            .iter()
            .map(|b| b.as_ref() as &(dyn ToSql + Sync))
            .collect();
        let fut = client.query_opt(&st, &refs);
        let row = match tokio::time::timeout(self.timeout + Duration::from_millis(200), fut).await {
            Err(_) => {
                return Err(Error::new(
                    ErrorKind::Ledger,
                    format!("ledger query {} timed out", spec.name),
                ))
            }
            Ok(Err(e)) => {
                if client.is_closed() {
                    *self.session.lock().await = None;
                }
                return Err(Error::new(
                    ErrorKind::Ledger,
                    format!("ledger query {} failed: {}", spec.name, db_message(&e)),
                ));
            }
            Ok(Ok(r)) => r,
        };
        let Some(row) = row else { return Ok(None) };
        let col = row.columns().first().map(|c| c.type_().clone());
        let v = match col {
            Some(Type::INT8) => row
                .try_get::<_, Option<i64>>(0)
                .map(|v| v.map(SqlValue::Int)),
            Some(Type::INT4) => row
                .try_get::<_, Option<i32>>(0)
                .map(|v| v.map(|i| SqlValue::Int(i.into()))),
            Some(Type::INT2) => row
                .try_get::<_, Option<i16>>(0)
                .map(|v| v.map(|i| SqlValue::Int(i.into()))),
            Some(Type::BOOL) => row
                .try_get::<_, Option<bool>>(0)
                .map(|v| v.map(SqlValue::Bool)),
            Some(Type::TEXT) | Some(Type::VARCHAR) | Some(Type::BPCHAR) | Some(Type::NAME) => row
                .try_get::<_, Option<String>>(0)
                .map(|v| v.map(SqlValue::Text)),
            other => {
                return Err(Error::new(
                    ErrorKind::Ledger,
                    format!(
                        "ledger query {} returns type {:?}; CAST it to BIGINT, TEXT or BOOLEAN",
                        spec.name,
                        other.map(|t| t.name().to_string())
                    ),
                ))
            }
        };
        v.map_err(|e| {
            Error::new(
                ErrorKind::Ledger,
                format!("ledger query {}: {e}", spec.name),
            )
        })
    }

    pub(crate) async fn check(
        &self,
        queries: &BTreeMap<String, QuerySpec>,
    ) -> Vec<(Option<String>, String)> {
        let client = match connect(&self.url, self.schema.as_deref(), self.timeout, true).await {
            Ok(c) => c,
            Err(e) => return vec![(None, format!("ledger unavailable: {e}"))],
        };
        let mut out = Vec::new();
        for q in queries.values() {
            match client.prepare(&q.sql).await {
                Ok(st) => match st.columns().first().map(|c| c.type_().clone()) {
                    None => out.push((Some(q.name.clone()), "query returns no column".into())),
                    Some(t)
                        if ![
                            Type::INT8,
                            Type::INT4,
                            Type::INT2,
                            Type::BOOL,
                            Type::TEXT,
                            Type::VARCHAR,
                            Type::BPCHAR,
                            Type::NAME,
                        ]
                        .contains(&t) =>
                    {
                        out.push((
                            Some(q.name.clone()),
                            format!(
                                "returns PostgreSQL type {}; CAST it to BIGINT, TEXT or BOOLEAN",
                                t.name()
                            ),
                        ))
                    }
                    Some(_) => {}
                },
                Err(e) => out.push((
                    Some(q.name.clone()),
                    format!("does not prepare: {}", db_message(&e)),
                )),
            }
        }
        out
    }
}

pub(crate) fn db_message(e: &tokio_postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => db.message().to_string(),
        None => e.to_string(),
    }
}

fn to_sql(p: SqlParam, ty: &Type) -> Result<Box<dyn ToSql + Sync + Send>, String> {
    Ok(match (p, ty) {
        (SqlParam::Int(i), &Type::INT8) => Box::new(i),
        (SqlParam::Int(i), &Type::INT4) => {
            Box::new(i32::try_from(i).map_err(|_| "integer parameter out of range")?)
        }
        (SqlParam::Int(i), &Type::INT2) => {
            Box::new(i16::try_from(i).map_err(|_| "integer parameter out of range")?)
        }
        (
            SqlParam::Text(s),
            &Type::TEXT | &Type::VARCHAR | &Type::BPCHAR | &Type::NAME | &Type::UNKNOWN,
        ) => Box::new(s),
        (SqlParam::Bool(b), &Type::BOOL) => Box::new(b),
        (p, ty) => {
            return Err(format!(
                "a {} parameter cannot bind to a {} placeholder",
                match p {
                    SqlParam::Int(_) => "integer",
                    SqlParam::Text(_) => "string",
                    SqlParam::Bool(_) => "bool",
                },
                ty.name()
            ))
        }
    })
}
