//! The `larkgate` binary.

fn main() {}
