//! `warden check-call`: validate one tool call against a policy and ledger; print the
//! verdict as JSON. Exit 0 allow, 1 deny or needs_approval, 2 error.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context as _;
use warden_policy::{Policy, PolicyOptions, Principal, ToolCall};

/// Arguments.
#[derive(clap::Args)]
pub struct Args {
    /// Policy file (TOML). Default: the built-in demo policy with the demo SQLite ledger.
    #[arg(long)]
    policy: Option<PathBuf>,
    /// The caller's role (e.g. support_agent, finance).
    #[arg(long)]
    role: String,
    /// The tool call as JSON: {"name":…,"arguments":{…}} (OpenAI arguments may be a JSON
    /// string) or an Anthropic {"type":"tool_use","name":…,"input":{…}} block.
    #[arg(long)]
    call: String,
    /// The caller authenticated with MFA.
    #[arg(long)]
    mfa: bool,
    /// The caller's identity (velocity limits and approvals are per principal).
    #[arg(long, default_value = "cli")]
    principal: String,
    /// Act on the verdict: place a hold for an allowed money call and record the
    /// idempotency key. Without it the call is only evaluated.
    #[arg(long)]
    hold: bool,
    /// Append an audit record of the verdict to this hash-chained JSONL file.
    #[arg(long)]
    audit: Option<PathBuf>,
    /// Ledger URL overriding the policy (sqlite:PATH or postgres://…).
    #[arg(long)]
    ledger: Option<String>,
    /// State store URL overriding the policy (sqlite:PATH or postgres://…).
    #[arg(long)]
    state: Option<String>,
}

/// Loads the policy named by `--policy` (or the demo) with the common overrides.
pub(crate) fn load_policy(path: Option<&PathBuf>, opts: PolicyOptions) -> anyhow::Result<Policy> {
    let policy = match path {
        Some(p) => Policy::load_with(p, opts)?,
        None => Policy::demo(opts)?,
    };
    Ok(policy)
}

/// Opens the audit log named by `--audit`.
pub(crate) fn open_audit(
    path: Option<&PathBuf>,
) -> anyhow::Result<Option<Arc<warden_audit::AuditLog>>> {
    match path {
        Some(p) => Ok(Some(Arc::new(warden_audit::AuditLog::open(
            p,
            warden_audit::Fsync::Always,
        )?))),
        None => Ok(None),
    }
}

/// Run the subcommand.
pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let value: serde_json::Value =
        serde_json::from_str(&args.call).context("--call is not valid JSON")?;
    let call = ToolCall::from_any(&value).context("--call")?;
    let opts = PolicyOptions {
        ledger_url: args.ledger.clone(),
        state_url: args.state.clone(),
        audit: open_audit(args.audit.as_ref())?,
        ..PolicyOptions::default()
    };
    let policy = load_policy(args.policy.as_ref(), opts)?;
    let principal = Principal::new(args.principal, args.role).with_mfa(args.mfa);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let verdict = rt.block_on(async {
        if args.hold {
            policy.validate(&principal, &call).await
        } else {
            policy.evaluate(&principal, &call).await
        }
    });
    let _ = writeln!(
        std::io::stdout(),
        "{}",
        serde_json::to_string_pretty(&verdict)?
    );
    Ok(ExitCode::from(verdict.exit_code()))
}
