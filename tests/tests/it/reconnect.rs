//! Reconnect and restart end to end (engine engineer).
