//! The `signet` binary; all work lives in the library.

fn main() -> std::process::ExitCode {
    signet::cli::main()
}
