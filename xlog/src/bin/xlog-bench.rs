//! xlog benchmark (being written).
fn main() {}
