//! Rough single-thread scan throughput on the seeded corpus (the criterion bench
//! `cargo bench --bench scan` is the careful measurement):
//! `cargo run --release -p warden-core --example throughput [per-pack|profile]`.

use std::time::Instant;

use warden_core::testdata::corpus;
use warden_core::Scanner;

fn main() {
    match std::env::args().nth(1).as_deref() {
        Some("per-pack") => throughput_per_pack(),
        Some("profile") => profile(),
        _ => throughput_smoke(),
    }
}

/// One pass over 2 MB of the sparse corpus, small enough for
/// `valgrind --tool=callgrind`.
fn profile() {
    // `profile pii/email.toml` profiles one built-in pack alone, `profile
    // some/file.toml` one pack file from disk (to try a rule change without
    // a rebuild).
    let t = Instant::now();
    let scanner = match std::env::args().nth(2) {
        Some(file) if std::path::Path::new(&file).is_file() => {
            let src = std::fs::read_to_string(&file).unwrap();
            let pack = warden_core::Pack::parse(&src, &file).unwrap();
            Scanner::builder().pack(pack).build().unwrap()
        }
        Some(only) => {
            let &(path, src) = warden_core::builtin_pack_sources()
                .iter()
                .find(|(p, _)| *p == only)
                .expect("no such built-in pack");
            let pack = warden_core::Pack::parse(src, path).unwrap();
            Scanner::builder().pack(pack).build().unwrap()
        }
        None => Scanner::builtin().unwrap(),
    };
    println!("built in {:.1} ms", t.elapsed().as_secs_f64() * 1e3);
    // PROFILE_DENSE=1: one entity per 60 bytes instead of 400.
    let bpe = if std::env::var_os("PROFILE_DENSE").is_some() {
        60
    } else {
        400
    };
    let c = corpus(1, 2_000_000, bpe);
    // PROFILE_REPS=N: N passes, so that a sampling profiler (`perf record`)
    // sees the scan rather than the build.
    let reps: usize = std::env::var("PROFILE_REPS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(1);
    let mut n = 0;
    for _ in 0..reps {
        n = c.docs.iter().map(|d| scanner.scan(d).len()).sum();
    }
    println!("{n} findings, {} planted", c.entities());
}

fn throughput_smoke() {
    let scanner = Scanner::builtin().unwrap();
    for (name, bpe) in [("sparse", 400), ("dense", 60)] {
        let c = corpus(1, 8_000_000, bpe);
        let t = Instant::now();
        let mut n = 0;
        for _ in 0..3 {
            for d in &c.docs {
                n += scanner.scan(d).len();
            }
        }
        let secs = t.elapsed().as_secs_f64() / 3.0;
        println!(
            "{name}: {:.1} MB/s ({} findings/pass, {} planted)",
            c.bytes() as f64 / secs / 1e6,
            n / 3,
            c.entities()
        );
    }
}

/// Per-pack throughput, to see where time goes.
fn throughput_per_pack() {
    let c = corpus(1, 4_000_000, 400);
    for (path, src) in warden_core::builtin_pack_sources() {
        let pack = warden_core::Pack::parse(src, path).unwrap();
        let scanner = Scanner::builder().pack(pack).build().unwrap();
        let t = Instant::now();
        let mut n = 0;
        for d in &c.docs {
            n += scanner.scan(d).len();
        }
        let secs = t.elapsed().as_secs_f64();
        println!("{path}: {:.1} MB/s ({n})", c.bytes() as f64 / secs / 1e6);
    }
    let empty = Scanner::builder().build().unwrap();
    let t = Instant::now();
    for d in &c.docs {
        empty.scan(d);
    }
    println!(
        "no packs: {:.1} MB/s",
        c.bytes() as f64 / t.elapsed().as_secs_f64() / 1e6
    );
}
