//! `chime-bindings` tests: the header, the ABI's fault cases and pump mode (calling the `extern
//! "C"` functions directly), and C / C++ / C# programs built and run against a real server.

#![allow(clippy::unwrap_used)]

mod abi;
mod header;
mod programs;
mod support;
mod translation;
