//! The `larkgate` binary.

fn main() -> std::process::ExitCode {
    larkgate::cli::main()
}
