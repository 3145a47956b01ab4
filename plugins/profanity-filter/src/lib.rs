//! Chime content-filter plugin: word lists matched in one pass after normalisation
