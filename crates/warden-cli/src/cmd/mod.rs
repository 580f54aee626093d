//! One module per subcommand: each has `Args` (clap) and `run(Args) -> anyhow::Result<ExitCode>`.

pub mod approve;
pub mod audit;
pub mod check_call;
pub mod eval;
pub mod policy;
pub mod redact;
pub mod restore;
pub mod scan;
pub mod serve;
pub mod test_patterns;
