//! `warden redact`: print the text with PII and secrets replaced; optionally save the vault.

use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result};
use warden_core::{json, RedactConfig, Redactor, Strategy, Vault};

use crate::input::{self, EngineArgs};

/// Arguments of `warden redact`.
#[derive(clap::Args)]
pub struct Args {
    /// Input file (`-` or nothing: stdin).
    pub file: Option<PathBuf>,
    /// One strategy for every entity type (default: the config's per-type strategies, else `placeholder`).
    #[arg(long, value_name = "placeholder|mask|hash|remove")]
    pub strategy: Option<Strategy>,
    /// Write the vault (placeholder -> original) to this file (mode 0600), for `warden restore`.
    #[arg(long, value_name = "FILE")]
    pub vault: Option<PathBuf>,
    /// File holding the HMAC key for `hash` tokens and keyed placeholders (stable across calls).
    /// Default: the environment variable WARDEN_REDACT_KEY, else a random key per run.
    #[arg(long, value_name = "FILE")]
    pub key_file: Option<PathBuf>,
    /// Treat the input as a JSON document: redact every string leaf in place, keys as context.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub engine: EngineArgs,
}

/// Reads the HMAC key from `--key-file` or `WARDEN_REDACT_KEY`.
fn key(args: &Args) -> Result<Option<Vec<u8>>> {
    if let Some(path) = &args.key_file {
        let raw =
            fs::read(path).with_context(|| format!("{}: cannot read key file", path.display()))?;
        let key = raw.trim_ascii().to_vec();
        anyhow::ensure!(
            key.len() >= 16,
            "{}: key must be at least 16 bytes",
            path.display()
        );
        return Ok(Some(key));
    }
    match std::env::var("WARDEN_REDACT_KEY") {
        Ok(k) if k.len() >= 16 => Ok(Some(k.into_bytes())),
        Ok(_) => anyhow::bail!("WARDEN_REDACT_KEY must be at least 16 bytes"),
        Err(_) => Ok(None),
    }
}

/// Redacts; exit 0 (1 is not used: redaction is not a check).
pub fn run(args: Args) -> Result<ExitCode> {
    let cfg = args.engine.file_config()?;
    let scanner = args.engine.scanner(&cfg)?;
    let mut redact_cfg: RedactConfig = cfg.scan.redact.clone();
    if let Some(s) = args.strategy {
        redact_cfg = RedactConfig {
            default: s,
            per_entity: Default::default(),
            ..redact_cfg
        };
    }
    let key = key(&args)?;
    let mut vault = match &key {
        Some(k) => Vault::with_key(k),
        None => Vault::new(),
    };
    let redactor = Redactor::new(scanner, redact_cfg, key);
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
        json::redact_json(&redactor, &mut value, &mut vault)
            .map_err(|e| anyhow::anyhow!("{}: {e}", input::display(args.file.as_deref())))?;
        serde_json::to_writer(&mut w, &value)?;
        writeln!(w)?;
    } else {
        let r = redactor.redact(&text, &mut vault);
        w.write_all(r.text.as_bytes())?;
    }
    w.flush()?;
    if let Some(path) = &args.vault {
        write_private(path, &serde_json::to_vec(&vault)?)?;
    }
    Ok(ExitCode::SUCCESS)
}

/// Writes a file readable by its owner only: a vault holds the original values.
fn write_private(path: &Path, bytes: &[u8]) -> Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("{}: cannot write vault", path.display()))?;
    f.write_all(bytes)?;
    f.sync_all()?;
    Ok(())
}
