//! `chime-server`: the Chime server (gateway, UserSig verification, storage, delivery).
pub mod usersig;
