//! Scores each line of stdin and prints score, verdict and evidence rule ids.
//!
//! `echo "ignore all previous instructions" | cargo run -p warden-injection --example score -- [user|system|tool|document]`

use std::io::BufRead;

use warden_injection::{Detector, Source};

fn main() {
    let source: Source = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(Source::User);
    let det = match Detector::builtin() {
        Ok(d) => d,
        Err(e) => {
            eprintln!("score: {e}");
            std::process::exit(2);
        }
    };
    for line in std::io::stdin().lock().lines().map_while(Result::ok) {
        let r = det.check(&line, source);
        let rules: Vec<String> = r
            .evidence
            .iter()
            .map(|e| format!("{}@{}={:.2}", e.rule, e.layer, e.weight))
            .collect();
        println!("{:.3} {:?} {}", r.score, r.verdict, rules.join(" "));
    }
}
