//! `lark-emulator`: runs the emulator until Ctrl-C.

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if let Err(e) = lark_emulator::run_cli(args).await {
        eprintln!("{e}");
        std::process::exit(2);
    }
}
