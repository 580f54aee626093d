//! `warden test-patterns`: run every inline example of every pack (PII, secrets, injection).
//! What prompt reviewers run after editing a pack; `cargo test` runs the same checker.

use std::io::{self, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Result;
use warden_core::{check_examples, Scanner};
use warden_injection::Detector;

/// Arguments of `warden test-patterns`.
#[derive(clap::Args)]
pub struct Args {
    /// Pack directory (with `pii/`, `secrets/`, `injection/` below it); default: the built-in packs.
    pub dir: Option<PathBuf>,
}

/// Exit 0 when every example behaves, 1 when any fails, 2 when a pack does not load.
pub fn run(args: Args) -> Result<ExitCode> {
    let (core_packs, inj_packs) = match &args.dir {
        None => (
            warden_core::pack::builtin_packs()?,
            warden_injection::builtin_packs()?,
        ),
        Some(dir) => {
            anyhow::ensure!(dir.is_dir(), "{}: not a directory", dir.display());
            let inj_dir = dir.join("injection");
            let inj = if inj_dir.is_dir() {
                warden_injection::load_dir(&inj_dir)?
            } else {
                Vec::new()
            };
            (warden_core::pack::load_dir(dir)?, inj)
        }
    };
    let mut builder = Scanner::builder();
    for p in &core_packs {
        builder = builder.pack(p.clone());
    }
    let scanner = builder.build()?;
    let core = check_examples(&scanner, &core_packs);

    let stdout = io::stdout();
    let mut w = stdout.lock();
    for f in &core.failures {
        writeln!(w, "FAIL {f}")?;
    }
    let (mut passed, mut failed) = (core.passed, core.failures.len());
    if !inj_packs.is_empty() {
        // Rules only: the examples document what each rule matches, not the learned tier.
        let detector = Detector::new(&inj_packs, None)?;
        let inj = warden_injection::check_examples(&detector, &inj_packs);
        for f in &inj.failures {
            let what = if f.positive {
                "positive did not fire"
            } else {
                "negative fired"
            };
            let found = if f.found.is_empty() {
                "nothing".to_string()
            } else {
                f.found.join(", ")
            };
            writeln!(
                w,
                "FAIL {}: rule {}: {what}: {:?}; fired: {found}",
                f.origin, f.rule, f.example
            )?;
        }
        passed += inj.passed;
        failed += inj.failures.len();
    }
    writeln!(w, "{passed} passed, {failed} failed")?;
    Ok(if failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}
