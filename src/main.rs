//! The `folio` command: parses the command line and runs it.

fn main() -> std::process::ExitCode {
    folio::cli::main()
}
