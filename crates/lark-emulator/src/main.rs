//! `lark-emulator`: runs the emulator until Ctrl-C.

fn main() {}
