//! The echo-svc binary: parse flags, set up logging, run until SIGTERM/SIGINT.

use std::process::ExitCode;

use clap::Parser;
use echo_svc::Config;

fn main() -> ExitCode {
    let config = Config::parse();
    if let Err(e) = config.validate() {
        echo_svc::logging::stderr_line(format_args!("error: {e}"));
        return ExitCode::from(2);
    }
    if let Err(e) = echo_svc::logging::init(config.log_format, &config.log_level) {
        echo_svc::logging::stderr_line(format_args!("error: {e:#}"));
        return ExitCode::from(2);
    }
    let workers = config.worker_threads();
    // One worker: a current-thread runtime avoids cross-thread wake-ups entirely.
    let runtime = if workers == 1 {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
    } else {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(workers)
            .enable_all()
            .build()
    };
    let runtime = match runtime {
        Ok(rt) => rt,
        Err(e) => {
            echo_svc::logging::stderr_line(format_args!("error: starting the async runtime: {e}"));
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(echo_svc::serve(config)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e:#}");
            echo_svc::logging::stderr_line(format_args!("error: {e:#}"));
            ExitCode::FAILURE
        }
    }
}
