//! `warden restore`: put the original values back into redacted text using a vault file.

use std::fs;
use std::io::{self, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use warden_core::{json, Vault};

use crate::input;

/// Arguments of `warden restore`.
#[derive(clap::Args)]
pub struct Args {
    /// Input file (`-` or nothing: stdin).
    pub file: Option<PathBuf>,
    /// The vault written by `warden redact --vault`.
    #[arg(long, value_name = "FILE")]
    pub vault: PathBuf,
    /// Treat the input as JSON: restore inside string leaves, escaping originals so the JSON stays valid.
    #[arg(long)]
    pub json: bool,
}

/// Restores; exit 0.
pub fn run(args: Args) -> Result<ExitCode> {
    let raw = fs::read(&args.vault)
        .with_context(|| format!("{}: cannot read vault", args.vault.display()))?;
    let vault: Vault = serde_json::from_slice(&raw).map_err(|e| {
        anyhow::anyhow!(
            "{}: not a Warden vault (line {} column {})",
            args.vault.display(),
            e.line(),
            e.column()
        )
    })?;
    let text = input::read_text(args.file.as_deref())?;
    let stdout = io::stdout();
    let mut w = stdout.lock();
    if args.json {
        let mut value: serde_json::Value = serde_json::from_str(&text).map_err(|e| {
            anyhow::anyhow!(
                "{}: invalid JSON at line {} column {}",
                input::display(args.file.as_deref()),
                e.line(),
                e.column()
            )
        })?;
        json::restore_json_value(&vault, &mut value);
        serde_json::to_writer(&mut w, &value)?;
        writeln!(w)?;
    } else {
        w.write_all(vault.restore(&text).as_bytes())?;
    }
    w.flush()?;
    Ok(ExitCode::SUCCESS)
}
