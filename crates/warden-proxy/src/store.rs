//! Shared state behind one small interface: conversation vaults (for APIs whose
//! history lives at the vendor) and rate-limit counters. In memory with TTL by
//! default; Redis when several replicas serve one team. A store that fails makes
//! the request fail (closed), never pass unguarded.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use redis::aio::ConnectionManager;
use redis::AsyncCommands;

/// Store errors (no values in messages).
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The backend is unreachable or answered with an error.
    #[error("{0}")]
    Backend(String),
}

/// In-process store with per-entry expiry.
#[derive(Default)]
pub struct MemoryStore {
    data: Mutex<HashMap<String, (Vec<u8>, Instant)>>,
    counters: Mutex<HashMap<String, (u64, Instant)>>,
}

/// Redis-backed store (vaults and counters shared across replicas).
pub struct RedisStore {
    conn: ConnectionManager,
    timeout: Duration,
}

/// The configured store.
pub enum Store {
    /// In memory.
    Memory(MemoryStore),
    /// Redis.
    Redis(RedisStore),
}

impl Store {
    /// An in-memory store.
    pub fn memory() -> Store {
        Store::Memory(MemoryStore::default())
    }

    /// Connect to Redis.
    ///
    /// # Errors
    /// Bad URL or unreachable server.
    pub async fn redis(url: &str) -> Result<Store, StoreError> {
        let client = redis::Client::open(url)
            .map_err(|e| StoreError::Backend(format!("redis url: {}", e.kind_str())))?;
        let cfg = redis::aio::ConnectionManagerConfig::new()
            .set_connection_timeout(Duration::from_secs(2))
            .set_response_timeout(Duration::from_secs(2))
            .set_number_of_retries(1);
        let conn = tokio::time::timeout(
            Duration::from_secs(5),
            ConnectionManager::new_with_config(client, cfg),
        )
        .await
        .map_err(|_| StoreError::Backend("redis connect timed out".into()))?
        .map_err(|e| StoreError::Backend(format!("redis connect: {}", e.kind_str())))?;
        Ok(Store::Redis(RedisStore {
            conn,
            timeout: Duration::from_secs(2),
        }))
    }

    /// Name for logs and metrics.
    pub fn kind(&self) -> &'static str {
        match self {
            Store::Memory(_) => "memory",
            Store::Redis(_) => "redis",
        }
    }

    /// Fetch a value.
    ///
    /// # Errors
    /// Backend failure.
    pub async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        match self {
            Store::Memory(m) => {
                let mut d = m
                    .data
                    .lock()
                    .map_err(|_| StoreError::Backend("poisoned".into()))?;
                match d.get(key) {
                    Some((_, exp)) if *exp <= Instant::now() => {
                        d.remove(key);
                        Ok(None)
                    }
                    Some((v, _)) => Ok(Some(v.clone())),
                    None => Ok(None),
                }
            }
            Store::Redis(r) => {
                let mut c = r.conn.clone();
                timed(r.timeout, c.get::<_, Option<Vec<u8>>>(key)).await
            }
        }
    }

    /// Store a value with a TTL.
    ///
    /// # Errors
    /// Backend failure.
    pub async fn put(&self, key: &str, value: Vec<u8>, ttl: Duration) -> Result<(), StoreError> {
        match self {
            Store::Memory(m) => {
                let mut d = m
                    .data
                    .lock()
                    .map_err(|_| StoreError::Backend("poisoned".into()))?;
                let now = Instant::now();
                // Opportunistic sweep keeps memory bounded by live entries.
                if d.len() > 1024 && d.len().is_power_of_two() {
                    d.retain(|_, (_, exp)| *exp > now);
                }
                d.insert(key.to_string(), (value, now + ttl));
                Ok(())
            }
            Store::Redis(r) => {
                let mut c = r.conn.clone();
                timed(
                    r.timeout,
                    c.set_ex::<_, _, ()>(key, value, ttl.as_secs().max(1)),
                )
                .await
            }
        }
    }

    /// Add `by` to a counter that lives `window`; returns the new value and the
    /// seconds until it resets.
    ///
    /// # Errors
    /// Backend failure.
    pub async fn incr(
        &self,
        key: &str,
        by: u64,
        window: Duration,
    ) -> Result<(u64, u64), StoreError> {
        match self {
            Store::Memory(m) => {
                let mut d = m
                    .counters
                    .lock()
                    .map_err(|_| StoreError::Backend("poisoned".into()))?;
                let now = Instant::now();
                if d.len() > 4096 && d.len().is_power_of_two() {
                    d.retain(|_, (_, exp)| *exp > now);
                }
                let e = d.entry(key.to_string()).or_insert((0, now + window));
                if e.1 <= now {
                    *e = (0, now + window);
                }
                e.0 = e.0.saturating_add(by);
                Ok((e.0, e.1.saturating_duration_since(now).as_secs().max(1)))
            }
            Store::Redis(r) => {
                let mut c = r.conn.clone();
                let secs = window.as_secs().max(1);
                // INCRBY then EXPIRE NX in one round trip: the first hit starts the window.
                let (n, ttl): (u64, i64) = timed(
                    r.timeout,
                    redis::pipe()
                        .atomic()
                        .incr(key, by)
                        .cmd("EXPIRE")
                        .arg(key)
                        .arg(secs)
                        .arg("NX")
                        .ignore()
                        .ttl(key)
                        .query_async(&mut c),
                )
                .await?;
                Ok((n, if ttl > 0 { ttl as u64 } else { secs }))
            }
        }
    }

    /// Check the backend answers (for `/readyz`).
    ///
    /// # Errors
    /// Backend failure.
    pub async fn ping(&self) -> Result<(), StoreError> {
        match self {
            Store::Memory(_) => Ok(()),
            Store::Redis(r) => {
                let mut c = r.conn.clone();
                timed(r.timeout, redis::cmd("PING").query_async::<String>(&mut c))
                    .await
                    .map(|_| ())
            }
        }
    }
}

async fn timed<T>(
    d: Duration,
    f: impl std::future::Future<Output = redis::RedisResult<T>>,
) -> Result<T, StoreError> {
    match tokio::time::timeout(d, f).await {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(StoreError::Backend(format!("redis: {}", e.kind_str()))),
        Err(_) => Err(StoreError::Backend("redis timed out".into())),
    }
}

trait KindStr {
    fn kind_str(&self) -> String;
}

impl KindStr for redis::RedisError {
    fn kind_str(&self) -> String {
        // The category only: full messages can include the URL with a password.
        format!("{:?}", self.kind())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn memory_ttl_and_counters() {
        let s = Store::memory();
        s.put("a", b"x".to_vec(), Duration::from_secs(60))
            .await
            .unwrap();
        assert_eq!(s.get("a").await.unwrap().as_deref(), Some(&b"x"[..]));
        s.put("b", b"y".to_vec(), Duration::ZERO).await.unwrap();
        assert_eq!(s.get("b").await.unwrap(), None);
        assert_eq!(s.incr("c", 2, Duration::from_secs(60)).await.unwrap().0, 2);
        assert_eq!(s.incr("c", 3, Duration::from_secs(60)).await.unwrap().0, 5);
    }
}
