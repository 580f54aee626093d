//! `warden approve ID [--deny]`: decide a pending approval request. The decision binds
//! to the exact arguments of the request; the same call then gets `allow` (once) or `deny`.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use warden_policy::{ErrorKind, PolicyOptions};

use super::check_call::{load_policy, open_audit};

/// Arguments.
#[derive(clap::Args)]
pub struct Args {
    /// The approval request id (`approval_id` in the verdict).
    id: String,
    /// Deny instead of approve.
    #[arg(long)]
    deny: bool,
    /// Policy file whose state store holds the request. Default: the built-in demo policy.
    #[arg(long)]
    policy: Option<PathBuf>,
    /// State store URL overriding the policy (sqlite:PATH or postgres://…).
    #[arg(long)]
    state: Option<String>,
    /// Who decides (recorded with the decision). Default: $USER.
    #[arg(long)]
    approver: Option<String>,
    /// Append an audit record of the decision to this hash-chained JSONL file.
    #[arg(long)]
    audit: Option<PathBuf>,
}

/// Run the subcommand.
pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let opts = PolicyOptions {
        state_url: args.state.clone(),
        audit: open_audit(args.audit.as_ref())?,
        ..PolicyOptions::default()
    };
    let policy = load_policy(args.policy.as_ref(), opts)?;
    let approver = args
        .approver
        .or_else(|| std::env::var("USER").ok())
        .unwrap_or_else(|| "cli".into());
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let result = rt.block_on(async {
        if args.deny {
            policy.reject(&args.id, &approver).await
        } else {
            policy.approve(&args.id, &approver).await
        }
    });
    match result {
        Ok(a) => {
            let _ = writeln!(std::io::stdout(), "{}", serde_json::to_string_pretty(&a)?);
            Ok(ExitCode::SUCCESS)
        }
        Err(e) if matches!(e.kind(), ErrorKind::NotFound | ErrorKind::Conflict) => {
            let _ = writeln!(std::io::stderr(), "warden: {e}");
            Ok(ExitCode::from(1))
        }
        Err(e) => Err(e.into()),
    }
}
