//! The `larkgate` binary.

/// mimalloc instead of the system allocator: an event on the ingest path
/// makes a few dozen short-lived allocations, and glibc's malloc spent about
/// a sixth of the gateway's CPU on them (docs/BENCHMARKS.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    larkgate::cli::main()
}
