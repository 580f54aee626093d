//! `warden serve`: run the guard proxy in front of the LLM vendor.
//!
//! With no arguments: 127.0.0.1:8080, built-in packs, the demo policy and
//! ledger, forwarding to the OpenAI API with the key from `OPENAI_API_KEY`.
//! `--config FILE` for everything else (see `warden.example.toml`); the flags
//! below override it for the common cases.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use warden_proxy::Config;

/// Arguments of `warden serve`.
#[derive(clap::Args)]
pub struct Args {
    /// TOML config file (every field optional; see warden.example.toml).
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Address to listen on (default 127.0.0.1:8080). Non-loopback requires [auth].
    #[arg(long)]
    pub listen: Option<SocketAddr>,
    /// OpenAI base URL (default https://api.openai.com).
    #[arg(long)]
    pub upstream_openai: Option<String>,
    /// Anthropic base URL (default https://api.anthropic.com).
    #[arg(long)]
    pub upstream_anthropic: Option<String>,
    /// Tool-call policy file (default: the built-in demo policy and ledger).
    #[arg(long)]
    pub policy: Option<PathBuf>,
    /// Audit log file (hash-chained JSON Lines).
    #[arg(long)]
    pub audit: Option<PathBuf>,
    /// Extra pattern packs directory.
    #[arg(long)]
    pub packs: Option<PathBuf>,
}

/// Exit 0 after a clean shutdown; config errors are returned (exit 2).
pub fn run(args: Args) -> Result<ExitCode> {
    let mut cfg = match &args.config {
        Some(p) => Config::load(p)?,
        None => Config::default(),
    };
    if let Some(l) = args.listen {
        cfg.listen = l;
    }
    if let Some(u) = args.upstream_openai {
        cfg.upstream.openai.base_url = u;
    }
    if let Some(u) = args.upstream_anthropic {
        cfg.upstream.anthropic.base_url = u;
    }
    if let Some(p) = args.policy {
        cfg.policy.file = Some(p);
    }
    if let Some(p) = args.audit {
        cfg.audit.path = p;
    }
    if let Some(p) = args.packs {
        cfg.packs = Some(p);
    }
    cfg.validate()?;
    warden_proxy::check_bind(&cfg)?;
    warden_proxy::init_logging();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("tokio runtime")?;
    rt.block_on(warden_proxy::run(cfg, warden_proxy::shutdown_signal()))?;
    Ok(ExitCode::SUCCESS)
}
