//! The `gpushare` command.
fn main() {}
