//! Streaming latency probe for the load benchmark: sends streaming chat
//! requests at a fixed concurrency for a fixed time and reports time to first
//! byte and the delay between chunks (p50/p99, in ms) as one JSON line.
//!
//! Usage: `stream_probe URL BODY_FILE CONCURRENCY SECONDS`

use std::time::{Duration, Instant};

use futures::StreamExt;

fn pct(v: &mut [f64], p: f64) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(|a, b| a.total_cmp(b));
    v[((v.len() as f64 - 1.0) * p).round() as usize]
}

#[tokio::main]
async fn main() {
    let a: Vec<String> = std::env::args().collect();
    if a.len() != 5 {
        eprintln!("usage: stream_probe URL BODY_FILE CONCURRENCY SECONDS");
        std::process::exit(2);
    }
    let (url, body) = (a[1].clone(), std::fs::read(&a[2]).expect("body file"));
    let conc: usize = a[3].parse().expect("concurrency");
    let secs: u64 = a[4].parse().expect("seconds");
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(conc)
        .build()
        .expect("client");
    let end = Instant::now() + Duration::from_secs(secs);
    let mut tasks = Vec::new();
    for _ in 0..conc {
        let (client, url, body) = (client.clone(), url.clone(), body.clone());
        tasks.push(tokio::spawn(async move {
            let (mut ttfb, mut gaps, mut errors, mut n) = (Vec::new(), Vec::new(), 0u64, 0u64);
            while Instant::now() < end {
                let t0 = Instant::now();
                let resp = client
                    .post(&url)
                    .header("content-type", "application/json")
                    .body(body.clone())
                    .send()
                    .await;
                let Ok(resp) = resp else {
                    errors += 1;
                    continue;
                };
                if !resp.status().is_success() {
                    errors += 1;
                    continue;
                }
                let mut s = resp.bytes_stream();
                let mut last: Option<Instant> = None;
                while let Some(chunk) = s.next().await {
                    if chunk.is_err() {
                        errors += 1;
                        break;
                    }
                    let now = Instant::now();
                    match last {
                        None => ttfb.push((now - t0).as_secs_f64() * 1e3),
                        Some(l) => gaps.push((now - l).as_secs_f64() * 1e3),
                    }
                    last = Some(now);
                }
                n += 1;
            }
            (ttfb, gaps, errors, n)
        }));
    }
    let (mut ttfb, mut gaps, mut errors, mut n) = (Vec::new(), Vec::new(), 0, 0);
    for t in tasks {
        if let Ok((a, b, e, k)) = t.await {
            ttfb.extend(a);
            gaps.extend(b);
            errors += e;
            n += k;
        }
    }
    println!(
        "{{\"requests\":{n},\"errors\":{errors},\"rps\":{:.0},\"ttfb_p50_ms\":{:.3},\"ttfb_p99_ms\":{:.3},\"gap_p50_ms\":{:.3},\"gap_p99_ms\":{:.3}}}",
        n as f64 / secs as f64,
        pct(&mut ttfb, 0.5),
        pct(&mut ttfb, 0.99),
        pct(&mut gaps, 0.5),
        pct(&mut gaps, 0.99)
    );
}
