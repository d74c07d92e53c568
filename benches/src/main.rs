//! The `benches` binary: the end-to-end SLO bench and the comparison harness.

use std::process::ExitCode;

use clap::Parser as _;

fn main() -> ExitCode {
    let cli = benches::cli::Cli::parse();
    match benches::dispatch(cli) {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
