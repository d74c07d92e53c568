use std::process::ExitCode;

use clap::Parser as _;

fn main() -> ExitCode {
    let cli = loadgen::configured::cli::Cli::parse();
    let filter = tracing_subscriber::EnvFilter::try_from_env("LOADGEN_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        // A log line that cannot be written is dropped, not reported by a panic.
        .log_internal_errors(false)
        .init();
    match loadgen::dispatch(cli) {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            loadgen::report::console::note(format_args!("loadgen: error: {e:#}"));
            ExitCode::from(loadgen::exit_code_for(&e))
        }
    }
}
