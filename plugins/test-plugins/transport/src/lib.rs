//! Test fixture: a loopback transport plugin that echoes every frame from another thread
