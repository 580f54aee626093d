//! A bounded cache of guard results, found by a keyed digest of the text.
//!
//! A chat client resends the whole conversation on every turn, so without a
//! cache every turn rescans every earlier message and a long conversation
//! costs quadratic scan time. Scan and injection results are pure functions
//! of the text (and the JSON key or source) under one configuration, and the
//! cache lives in [`crate::engine::Engines`], which a configuration change
//! rebuilds.
//!
//! Only results are kept: entity types, rule ids, spans and scores, never the
//! text. Entries are found by a 128-bit digest, two SipHash-1-3 hashes under
//! random per-process keys, so the cache holds nothing that could be turned
//! back into a prompt, and nobody without the keys can aim two texts at one
//! entry.
//!
//! Eviction is by generations: entries go into the current map; when it holds
//! half the capacity it becomes the previous one and the one before is
//! dropped. A hit in the previous map moves the entry forward, so what the
//! conversation keeps resending stays, and memory is bounded by `entries`.

use std::collections::HashMap;
use std::hash::{BuildHasher, Hasher, RandomState};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

/// Texts shorter than this are scanned every time: they are cheap, and
/// would only crowd out the long messages the cache is for.
pub const MIN_CACHED_BYTES: usize = 64;

/// See the [module documentation](self).
#[derive(Debug)]
pub struct ResultCache<V> {
    /// Entries per generation; 0 turns the cache off.
    half: usize,
    keys: [RandomState; 2],
    generations: Mutex<Generations<V>>,
    hits: AtomicU64,
    misses: AtomicU64,
}

#[derive(Debug)]
struct Generations<V> {
    current: HashMap<u128, V>,
    previous: HashMap<u128, V>,
}

impl<V: Clone> ResultCache<V> {
    /// A cache of at most `entries` results (0: off).
    pub fn new(entries: usize) -> Self {
        ResultCache {
            half: entries / 2,
            keys: [RandomState::new(), RandomState::new()],
            generations: Mutex::new(Generations {
                current: HashMap::new(),
                previous: HashMap::new(),
            }),
            hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
        }
    }

    /// The cached result for `text` under `scope` (what else the result
    /// depends on: the principal, the JSON key, the source), or `compute`'s,
    /// which is then kept if `keep` says so (results too large to hold are
    /// not).
    pub fn get_or_compute(
        &self,
        scope: &[&str],
        text: &str,
        compute: impl FnOnce() -> V,
        keep: impl FnOnce(&V) -> bool,
    ) -> V {
        if self.half == 0 || text.len() < MIN_CACHED_BYTES {
            return compute();
        }
        let key = self.digest(scope, text);
        if let Some(v) = self.get(key) {
            self.hits.fetch_add(1, Ordering::Relaxed);
            return v;
        }
        self.misses.fetch_add(1, Ordering::Relaxed);
        let v = compute();
        if keep(&v) {
            self.insert(key, v.clone());
        }
        v
    }

    /// Hits and misses so far.
    pub fn stats(&self) -> (u64, u64) {
        (
            self.hits.load(Ordering::Relaxed),
            self.misses.load(Ordering::Relaxed),
        )
    }

    /// Entries held now.
    pub fn len(&self) -> usize {
        self.generations
            .lock()
            .map_or(0, |g| g.current.len() + g.previous.len())
    }

    /// Whether the cache holds nothing.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn digest(&self, scope: &[&str], text: &str) -> u128 {
        let [a, b] = self.keys.each_ref().map(|k| {
            let mut h = k.build_hasher();
            // Counted and length-prefixed, so no (scope, text) reads as another.
            h.write_usize(scope.len());
            for part in scope {
                h.write_usize(part.len());
                h.write(part.as_bytes());
            }
            h.write(text.as_bytes());
            h.finish()
        });
        u128::from(a) << 64 | u128::from(b)
    }

    fn get(&self, key: u128) -> Option<V> {
        // A poisoned lock only means another request panicked mid-update:
        // treat it as a miss rather than fail this one.
        let mut g = self.generations.lock().ok()?;
        if let Some(v) = g.current.get(&key) {
            return Some(v.clone());
        }
        let v = g.previous.remove(&key)?;
        self.push(&mut g, key, v.clone());
        Some(v)
    }

    fn insert(&self, key: u128, v: V) {
        if let Ok(mut g) = self.generations.lock() {
            self.push(&mut g, key, v);
        }
    }

    fn push(&self, g: &mut Generations<V>, key: u128, v: V) {
        g.current.insert(key, v);
        if g.current.len() >= self.half {
            g.previous = std::mem::take(&mut g.current);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all<V>(_: &V) -> bool {
        true
    }

    fn text(i: usize) -> String {
        format!("{i:0>80}")
    }

    #[test]
    fn a_second_lookup_is_a_hit_and_computes_nothing() {
        let c = ResultCache::new(8);
        assert_eq!(c.get_or_compute(&["user"], &text(1), || 1, all), 1);
        assert_eq!(
            c.get_or_compute(&["user"], &text(1), || panic!("cached"), all),
            1
        );
        assert_eq!(c.stats(), (1, 1));
    }

    #[test]
    fn scope_and_text_both_key_the_entry() {
        let c = ResultCache::new(8);
        c.get_or_compute(&["user"], &text(1), || 1, all);
        assert_eq!(c.get_or_compute(&["tool"], &text(1), || 2, all), 2);
        assert_eq!(c.get_or_compute(&["user"], &text(2), || 3, all), 3);
        // The length prefixes keep ("ab", "c…") apart from ("a", "bc…"),
        // and the count ["a", ""] apart from ["a"].
        let long = "c".repeat(80);
        c.get_or_compute(&["ab"], &long, || 4, all);
        assert_eq!(c.get_or_compute(&["a"], &format!("b{long}"), || 5, all), 5);
        assert_eq!(
            c.get_or_compute(&["a", ""], &format!("b{long}"), || 6, all),
            6
        );
        assert_eq!(c.stats(), (0, 6));
    }

    #[test]
    fn memory_is_bounded_and_resent_entries_survive() {
        let c = ResultCache::new(8);
        for i in 0..100 {
            c.get_or_compute(&[""], &text(i), || i, all);
            // The "system prompt", resent with every request.
            assert_eq!(c.get_or_compute(&[""], &text(1000), || 1000, all), 1000);
            assert!(c.len() <= 8, "{} entries", c.len());
        }
        let (hits, misses) = c.stats();
        assert_eq!((hits, misses), (99, 101));
        // Old entries are gone: computed again.
        assert_eq!(c.get_or_compute(&[""], &text(0), || 7, all), 7);
    }

    #[test]
    fn results_keep_refuses_are_not_held() {
        let c = ResultCache::new(8);
        let big = |v: &usize| *v < 10;
        assert_eq!(c.get_or_compute(&[""], &text(1), || 99, big), 99);
        assert_eq!(c.get_or_compute(&[""], &text(1), || 98, big), 98);
        assert!(c.is_empty());
        assert_eq!(c.stats(), (0, 2));
    }

    #[test]
    fn short_texts_and_a_zero_capacity_are_not_cached() {
        let c = ResultCache::new(8);
        c.get_or_compute(&[""], "short", || 1, all);
        assert_eq!(c.get_or_compute(&[""], "short", || 2, all), 2);
        let off = ResultCache::new(0);
        off.get_or_compute(&[""], &text(1), || 1, all);
        assert_eq!(off.get_or_compute(&[""], &text(1), || 2, all), 2);
        assert!(c.is_empty() && off.is_empty());
        assert_eq!(off.stats(), (0, 0));
    }
}
