//! Test fixture: an uploader plugin that copies files with progress and cancellation
