//! `warden policy lint FILE`: report every problem in a policy file with file and line —
//! bad TOML, unknown types, CEL that does not compile, queries that do not prepare
//! against the configured ledger. Exit 0 clean, 1 problems found, 2 unreadable file.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use warden_policy::{Policy, PolicyOptions};

/// Arguments.
#[derive(clap::Args)]
pub struct Args {
    #[command(subcommand)]
    command: Command,
}

#[derive(clap::Subcommand)]
enum Command {
    /// Check a policy file and prepare its ledger queries against the configured ledger.
    Lint {
        /// The policy file.
        file: PathBuf,
        /// Ledger URL overriding the policy (sqlite:PATH or postgres://…).
        #[arg(long)]
        ledger: Option<String>,
    },
    /// Print the built-in demo policy (a commented starting point).
    Demo,
}

/// Run the subcommand.
pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    match args.command {
        Command::Demo => {
            let _ = write!(std::io::stdout(), "{}", warden_policy::DEMO_POLICY);
            Ok(ExitCode::SUCCESS)
        }
        Command::Lint { file, ledger } => {
            let src =
                std::fs::read_to_string(&file).with_context(|| format!("{}", file.display()))?;
            let opts = PolicyOptions {
                ledger_url: ledger,
                ..PolicyOptions::default()
            };
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            let problems = rt.block_on(Policy::lint(&src, file.parent(), opts));
            let name = file.display();
            for p in &problems {
                match p.line {
                    Some(l) => {
                        let _ = writeln!(std::io::stdout(), "{name}:{l}: {}", p.message);
                    }
                    None => {
                        let _ = writeln!(std::io::stdout(), "{name}: {}", p.message);
                    }
                }
            }
            if problems.is_empty() {
                let _ = writeln!(std::io::stdout(), "{name}: ok");
                Ok(ExitCode::SUCCESS)
            } else {
                let _ = writeln!(std::io::stderr(), "{name}: {} problem(s)", problems.len());
                Ok(ExitCode::from(1))
            }
        }
    }
}
