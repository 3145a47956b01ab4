//! chime-xlog decoder binary (being written).
fn main() {}
