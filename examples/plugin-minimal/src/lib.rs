//! A minimal Chime content-filter plugin: blocks messages containing one configured word
