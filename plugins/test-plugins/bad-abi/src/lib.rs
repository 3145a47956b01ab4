//! Test fixture: a plugin that declares an ABI major version the host does not speak
