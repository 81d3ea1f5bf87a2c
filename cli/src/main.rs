use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = palreg_client::cli::Cli::parse();
    let mut out = std::io::stdout().lock();
    match palreg_client::cli::run(cli, &mut out) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("palreg-client: {e}");
            ExitCode::FAILURE
        }
    }
}
