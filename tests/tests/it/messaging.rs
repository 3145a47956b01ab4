//! Messaging end to end (engine engineer).
