//! `chime-bench`: the end-to-end benchmark (W1, W2 of `shared/spec/benchmarks.md`).
fn main() {}
