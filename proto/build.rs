//! Compiles `proto/chime.proto` with protox (a pure-Rust protobuf compiler), so a fresh machine
//! builds with cargo alone.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-changed=proto/chime.proto");
    let fds = protox::compile(["chime.proto"], ["proto"])?;
    prost_build::Config::new()
        .btree_map(["."])
        .compile_fds(fds)?;
    Ok(())
}
