//! The `larkgate` command line.
