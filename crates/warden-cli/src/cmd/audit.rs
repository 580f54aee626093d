//! `warden audit verify FILE`: check a hash-chained audit log. Exit 0 intact, 1 broken
//! (the first broken record is named as FILE:LINE: reason), 2 unreadable.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

/// Arguments.
#[derive(clap::Args)]
pub struct Args {
    #[command(subcommand)]
    command: Command,
}

#[derive(clap::Subcommand)]
enum Command {
    /// Verify every record's hash and the chain; name the first broken record.
    Verify {
        /// The audit log (JSON Lines).
        file: PathBuf,
        /// Print the report as JSON.
        #[arg(long)]
        json: bool,
    },
}

/// Run the subcommand.
pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let Command::Verify { file, json } = args.command;
    let report = warden_audit::verify(&file)?;
    let name = file.display();
    if json {
        let _ = writeln!(std::io::stdout(), "{}", serde_json::to_string(&report)?);
    }
    match &report.broken {
        None => {
            if !json {
                let _ = writeln!(
                    std::io::stdout(),
                    "{name}: ok, {} records, head {}",
                    report.records,
                    report.head
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        Some(b) => {
            let _ = writeln!(
                std::io::stderr(),
                "{name}:{}: {} ({} records verified before it)",
                b.line,
                b.reason,
                report.records
            );
            Ok(ExitCode::from(1))
        }
    }
}
