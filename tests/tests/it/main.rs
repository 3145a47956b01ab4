//! End-to-end tests: a real `chime-server` process, real engines, real sled files.
//!
//! One integration binary with one module per area; the harness is `chime_tests`.

mod call_path;
mod community;
mod conversations;
mod devices;
mod files;
mod group_manage;
mod group_rest;
mod groups;
mod harness;
mod idempotent_sends;
mod isolation;
mod large_groups;
mod lifecycle;
mod limits;
mod local_search_blocks;
mod logging;
mod login;
mod media;
mod messaging;
mod network;
mod offline_push;
mod plugins;
mod profiles;
mod quic;
mod read_barrier;
mod receipts;
mod reconnect;
mod relationships;
mod rest;
mod search;
mod signaling;
mod sync_cursor;
mod translation;
mod usersig_cache;
mod wal_recovery;
mod webhooks;
