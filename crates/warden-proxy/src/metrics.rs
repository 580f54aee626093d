//! Prometheus metrics, hand-written exposition (text format 0.0.4).
//!
//! Counters are keyed by name and a sorted label set; label values are
//! principals, routes, entity types, rule ids and verdicts — never detected values.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::Mutex;
use std::time::Duration;

const BUCKETS: &[f64] = &[
    0.0001, 0.00025, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
    10.0, 30.0, 60.0,
];

#[derive(Default)]
struct Histogram {
    counts: Vec<u64>,
    sum: f64,
    count: u64,
}

type Labels = Vec<(&'static str, String)>;

/// The registry.
#[derive(Default)]
pub struct Metrics {
    counters: Mutex<BTreeMap<(&'static str, Labels), u64>>,
    histograms: Mutex<BTreeMap<(&'static str, Labels), Histogram>>,
}

const HELP: &[(&str, &str, &str)] = &[
    (
        "warden_requests_total",
        "counter",
        "Requests by route, principal and HTTP status.",
    ),
    (
        "warden_blocked_requests_total",
        "counter",
        "Requests refused by the guard, by principal and reason.",
    ),
    (
        "warden_auth_failures_total",
        "counter",
        "Failed authentications by reason.",
    ),
    (
        "warden_detections_total",
        "counter",
        "Detected entities by type and action.",
    ),
    (
        "warden_injection_verdicts_total",
        "counter",
        "Injection verdicts by source and verdict.",
    ),
    (
        "warden_tool_calls_total",
        "counter",
        "Tool-call verdicts by principal, tool and verdict.",
    ),
    (
        "warden_rate_limited_total",
        "counter",
        "Requests over a limit, by principal and limit.",
    ),
    (
        "warden_not_scanned_total",
        "counter",
        "Request parts that could not be scanned, by reason.",
    ),
    (
        "warden_upstream_errors_total",
        "counter",
        "Upstream failures by route and kind.",
    ),
    (
        "warden_guard_cache_total",
        "counter",
        "Guard results served from the cache (hit) or computed (miss).",
    ),
    (
        "warden_upstream_latency_seconds",
        "histogram",
        "Vendor latency to response headers.",
    ),
    (
        "warden_added_latency_seconds",
        "histogram",
        "Time spent in Warden itself (request and response work).",
    ),
];

impl Metrics {
    /// Add `by` to a counter.
    pub fn inc(&self, name: &'static str, labels: &[(&'static str, &str)], by: u64) {
        self.update(name, labels, |v| *v += by);
    }

    /// Set a counter kept elsewhere (the guard-result cache counts its own
    /// hits) to its current value.
    pub fn set(&self, name: &'static str, labels: &[(&'static str, &str)], value: u64) {
        self.update(name, labels, |v| *v = value);
    }

    /// Apply `f` to a counter, created at zero when new.
    fn update(
        &self,
        name: &'static str,
        labels: &[(&'static str, &str)],
        f: impl FnOnce(&mut u64),
    ) {
        if let Ok(mut c) = self.counters.lock() {
            match find(&mut c, name, labels) {
                Some(v) => f(v),
                None => {
                    let mut v = 0;
                    f(&mut v);
                    c.insert(key(name, labels), v);
                }
            }
        }
    }

    /// Record a duration in a histogram.
    pub fn observe(&self, name: &'static str, labels: &[(&'static str, &str)], d: Duration) {
        let secs = d.as_secs_f64();
        if let Ok(mut h) = self.histograms.lock() {
            let h = match find(&mut h, name, labels) {
                Some(h) => h,
                None => h.entry(key(name, labels)).or_insert_with(|| Histogram {
                    counts: vec![0; BUCKETS.len()],
                    ..Default::default()
                }),
            };
            for (i, b) in BUCKETS.iter().enumerate() {
                if secs <= *b {
                    h.counts[i] += 1;
                }
            }
            h.sum += secs;
            h.count += 1;
        }
    }

    /// Current value of a counter (tests and `/readyz`).
    pub fn get(&self, name: &'static str, labels: &[(&'static str, &str)]) -> u64 {
        self.counters
            .lock()
            .ok()
            .and_then(|mut c| find(&mut c, name, labels).copied())
            .unwrap_or(0)
    }

    /// Prometheus text exposition.
    pub fn render(&self) -> String {
        let mut out = String::new();
        let counters = self.counters.lock().map(|c| c.clone()).unwrap_or_default();
        let hists = self.histograms.lock();
        for (name, kind, help) in HELP {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
            if *kind == "counter" {
                for ((n, labels), v) in counters.iter().filter(|((n, _), _)| n == name) {
                    let _ = writeln!(out, "{n}{} {v}", fmt_labels(labels, None));
                }
            } else if let Ok(h) = &hists {
                for ((n, labels), h) in h.iter().filter(|((n, _), _)| n == name) {
                    for (i, b) in BUCKETS.iter().enumerate() {
                        let _ = writeln!(
                            out,
                            "{n}_bucket{} {}",
                            fmt_labels(labels, Some(&b.to_string())),
                            h.counts[i]
                        );
                    }
                    let _ = writeln!(
                        out,
                        "{n}_bucket{} {}",
                        fmt_labels(labels, Some("+Inf")),
                        h.count
                    );
                    let _ = writeln!(out, "{n}_sum{} {}", fmt_labels(labels, None), h.sum);
                    let _ = writeln!(out, "{n}_count{} {}", fmt_labels(labels, None), h.count);
                }
            }
        }
        out
    }
}

/// An owned series key.
fn key(name: &'static str, labels: &[(&'static str, &str)]) -> (&'static str, Labels) {
    (
        name,
        labels.iter().map(|(k, v)| (*k, v.to_string())).collect(),
    )
}

/// The series `name{labels}` if it exists, found without allocating: a metric has
/// a handful of series, visited in key order from the first one of that name.
fn find<'m, T>(
    map: &'m mut BTreeMap<(&'static str, Labels), T>,
    name: &'static str,
    labels: &[(&'static str, &str)],
) -> Option<&'m mut T> {
    map.range_mut((name, Vec::new())..)
        .take_while(|((n, _), _)| *n == name)
        .find(|((_, l), _)| {
            l.len() == labels.len()
                && l.iter()
                    .zip(labels)
                    .all(|((k1, v1), (k2, v2))| k1 == k2 && v1 == v2)
        })
        .map(|(_, v)| v)
}

fn fmt_labels(labels: &Labels, le: Option<&str>) -> String {
    if labels.is_empty() && le.is_none() {
        return String::new();
    }
    let mut s = String::from("{");
    let mut first = true;
    for (k, v) in labels
        .iter()
        .map(|(k, v)| (*k, v.as_str()))
        .chain(le.map(|l| ("le", l)))
    {
        if !first {
            s.push(',');
        }
        first = false;
        let _ = write!(s, "{k}=\"");
        for c in v.chars() {
            match c {
                '\\' => s.push_str("\\\\"),
                '"' => s.push_str("\\\""),
                '\n' => s.push_str("\\n"),
                c => s.push(c),
            }
        }
        s.push('"');
    }
    s.push('}');
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn series_are_found_again_by_name_and_labels() {
        let m = Metrics::default();
        for (name, route, n) in [
            ("warden_requests_total", "chat", 1),
            ("warden_requests_total", "messages", 2),
            ("warden_requests_total", "chat", 3),
            ("warden_blocked_requests_total", "chat", 5),
            ("warden_requests_total", "chat", 7),
        ] {
            m.inc(name, &[("route", route), ("status", "200")], n);
        }
        let get = |name, route| m.get(name, &[("route", route), ("status", "200")]);
        assert_eq!(get("warden_requests_total", "chat"), 11);
        assert_eq!(get("warden_requests_total", "messages"), 2);
        assert_eq!(get("warden_blocked_requests_total", "chat"), 5);
        assert_eq!(get("warden_blocked_requests_total", "messages"), 0);
        assert_eq!(m.get("warden_requests_total", &[("route", "chat")]), 0);
        for _ in 0..3 {
            m.observe(
                "warden_added_latency_seconds",
                &[("route", "chat"), ("phase", "total")],
                Duration::from_micros(300),
            );
        }
        assert!(m
            .render()
            .contains("warden_added_latency_seconds_count{route=\"chat\",phase=\"total\"} 3"));
    }

    #[test]
    fn exposition() {
        let m = Metrics::default();
        m.inc(
            "warden_requests_total",
            &[("route", "chat"), ("status", "200")],
            2,
        );
        m.observe(
            "warden_added_latency_seconds",
            &[("route", "chat")],
            Duration::from_micros(300),
        );
        let t = m.render();
        assert!(
            t.contains("warden_requests_total{route=\"chat\",status=\"200\"} 2"),
            "{t}"
        );
        assert!(
            t.contains("warden_added_latency_seconds_bucket{route=\"chat\",le=\"0.0005\"} 1"),
            "{t}"
        );
        assert!(
            t.contains("warden_added_latency_seconds_bucket{route=\"chat\",le=\"0.00025\"} 0"),
            "{t}"
        );
    }
}
