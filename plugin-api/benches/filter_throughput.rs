//! Filter throughput benchmark (placeholder while the crate is scaffolded).
fn main() {}
