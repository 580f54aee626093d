//! `warden`: the command line. Parses arguments and dispatches; every capability
//! lives in a library crate (see `docs/design.md`).
//!
//! Exit codes: 0 ok, 1 findings / denied / failures, 2 usage or config error,
//! 141 the reader of the output went away (as a tool killed by SIGPIPE).

use std::io::Write;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod cmd;
mod input;

#[derive(Parser)]
#[command(
    name = "warden",
    version,
    about = "LLM guardrail: find and redact PII, secrets and prompt injection; validate tool calls; guard proxy"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Scan text for PII, secrets and prompt injection; print JSON findings.
    Scan(cmd::scan::Args),
    /// Redact PII and secrets from text.
    Redact(cmd::redact::Args),
    /// Put original values back into redacted text using a vault file.
    Restore(cmd::restore::Args),
    /// Run every inline example of every pattern pack.
    TestPatterns(cmd::test_patterns::Args),
    /// Score labeled corpora (precision/recall) and compare with a baseline.
    Eval(cmd::eval::Args),
    /// Validate one tool call against a policy and ledger.
    CheckCall(cmd::check_call::Args),
    /// Policy file tools.
    Policy(cmd::policy::Args),
    /// Approve or deny a pending approval request.
    Approve(cmd::approve::Args),
    /// Audit log tools.
    Audit(cmd::audit::Args),
    /// Run the guard proxy in front of the LLM vendor.
    Serve(cmd::serve::Args),
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            // clap prints help/version to stdout with exit 0; usage errors exit 2.
            let _ = e.print();
            return match e.kind() {
                clap::error::ErrorKind::DisplayHelp | clap::error::ErrorKind::DisplayVersion => {
                    ExitCode::SUCCESS
                }
                _ => ExitCode::from(2),
            };
        }
    };
    let result = match cli.command {
        Command::Scan(a) => cmd::scan::run(a),
        Command::Redact(a) => cmd::redact::run(a),
        Command::Restore(a) => cmd::restore::run(a),
        Command::TestPatterns(a) => cmd::test_patterns::run(a),
        Command::Eval(a) => cmd::eval::run(a),
        Command::CheckCall(a) => cmd::check_call::run(a),
        Command::Policy(a) => cmd::policy::run(a),
        Command::Approve(a) => cmd::approve::run(a),
        Command::Audit(a) => cmd::audit::run(a),
        Command::Serve(a) => cmd::serve::run(a),
    };
    match result {
        Ok(code) => code,
        // The reader of our output went away (`warden scan … | head`): that is
        // how pipelines end, not an error to report. Quietly, but never as
        // success: a scan cut short must not read as a clean one. 141 is what
        // the shell reports for a tool killed by SIGPIPE, which `set -o
        // pipefail` scripts already handle.
        Err(e) if broken_pipe(&e) => ExitCode::from(141),
        Err(e) => {
            // Through `writeln!`: `eprintln!` panics when stderr is closed too.
            let _ = writeln!(std::io::stderr(), "warden: {e:#}");
            ExitCode::from(2)
        }
    }
}

/// Is `e` (or what caused it) a write to a closed pipe?
fn broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        let kind = match c.downcast_ref::<std::io::Error>() {
            Some(io) => Some(io.kind()),
            // serde_json keeps the I/O error to itself.
            None => c
                .downcast_ref::<serde_json::Error>()
                .and_then(serde_json::Error::io_error_kind),
        };
        kind == Some(std::io::ErrorKind::BrokenPipe)
    })
}
