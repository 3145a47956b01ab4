//! Loading and refusing plugins: every refusal is a clear error naming the plugin.

use std::path::PathBuf;

use chime_plugin_api::abi::{CHIME_PLUGIN_ABI_MAJOR, CHIME_PLUGIN_ABI_MINOR};
use chime_plugin_api::host::{HostConfig, LoadedPlugin, PluginError, PluginHost, PluginKind};

use crate::support::{non_plugin_library, plugin_path};

#[test]
fn missing_file_is_not_found_naming_the_path() {
    let host = PluginHost::new(HostConfig::default());
    let path = PathBuf::from("/nonexistent/dir/libnothing.so");
    let error = host.load(&path, "{}").unwrap_err();
    assert_eq!(error, PluginError::NotFound { path: path.clone() });
    assert_eq!(
        error.to_string(),
        "plugin /nonexistent/dir/libnothing.so: file not found"
    );
    assert!(host.loaded_plugins().is_empty());
}

#[test]
fn a_file_that_is_not_a_library_fails_to_load() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("libfake.so");
    std::fs::write(&path, b"not an ELF file").unwrap();
    let error = PluginHost::new(HostConfig::default())
        .load(&path, "{}")
        .unwrap_err();
    match error {
        PluginError::LoadFailed { path: named, .. } => assert_eq!(named, path),
        other => panic!("expected LoadFailed, got {other:?}"),
    }
}

#[test]
fn a_library_without_the_entry_symbol_is_refused() {
    let Some(libc) = non_plugin_library() else {
        eprintln!("no system C library found; skipping");
        return;
    };
    let error = PluginHost::new(HostConfig::default())
        .load(&libc, "{}")
        .unwrap_err();
    match &error {
        PluginError::MissingSymbol { path, .. } => assert_eq!(path, &libc),
        other => panic!("expected MissingSymbol, got {other:?}"),
    }
    assert!(
        error
            .to_string()
            .contains("missing entry symbol `chime_plugin_entry`"),
        "{error}"
    );
}

#[test]
fn a_wrong_abi_major_is_refused_naming_the_plugin() {
    let path = plugin_path("chime_test_bad_abi");
    let error = PluginHost::new(HostConfig::default())
        .load(&path, "{}")
        .unwrap_err();
    let file_name = path.file_name().unwrap().to_string_lossy().into_owned();
    assert_eq!(
        error,
        PluginError::AbiMismatch {
            name: file_name.clone(),
            path: path.clone(),
            found_major: 99,
            found_minor: 0,
            host_major: CHIME_PLUGIN_ABI_MAJOR,
            host_minor: CHIME_PLUGIN_ABI_MINOR,
        }
    );
    assert!(
        error.to_string().contains(&format!("plugin {file_name}")),
        "{error}"
    );
    assert!(
        error.to_string().contains("ABI 99.0 is not compatible"),
        "{error}"
    );
}

#[test]
fn a_newer_abi_minor_is_refused_naming_the_plugin() {
    let path = plugin_path("chime_test_future_minor");
    let error = PluginHost::new(HostConfig::default())
        .load(&path, "{}")
        .unwrap_err();
    assert_eq!(
        error,
        PluginError::AbiMismatch {
            name: "future-minor".to_owned(),
            path: path.clone(),
            found_major: CHIME_PLUGIN_ABI_MAJOR,
            found_minor: 99,
            host_major: CHIME_PLUGIN_ABI_MAJOR,
            host_minor: CHIME_PLUGIN_ABI_MINOR,
        }
    );
}

#[tokio::test]
async fn an_older_abi_minor_still_loads_and_works() {
    let path = plugin_path("chime_test_old_minor");
    let host = PluginHost::new(HostConfig::default());
    let filter = match host.load(&path, "{}").unwrap() {
        LoadedPlugin::ContentFilter(filter) => filter,
        other => panic!("expected a content filter, got {other:?}"),
    };
    assert_eq!(filter.info().name, "old-minor");
    assert_eq!(filter.info().kind, PluginKind::ContentFilter);
    let outcome = filter
        .filter(
            "hi",
            chime_plugin_api::Direction::Outgoing,
            chime_plugin_api::ContentKind::Text,
        )
        .await
        .unwrap();
    assert_eq!(
        outcome,
        chime_plugin_api::FilterOutcome::Replaced("old:hi".to_owned())
    );
}

#[test]
fn a_plugin_that_refuses_its_config_fails_init() {
    let path = plugin_path("chime_test_filter");
    let error = PluginHost::new(HostConfig::default())
        .load(&path, r#"{"mode": "fail_create"}"#)
        .unwrap_err();
    assert_eq!(
        error,
        PluginError::InitFailed {
            name: "test-filter".to_owned(),
            path: path.clone(),
            message: "test plugin refuses its config".to_owned(),
        }
    );
}

#[test]
fn a_plugin_that_panics_in_create_fails_init_and_the_process_goes_on() {
    let path = plugin_path("chime_test_filter");
    let error = PluginHost::new(HostConfig::default())
        .load(&path, r#"{"mode": "panic_on_create"}"#)
        .unwrap_err();
    assert_eq!(
        error,
        PluginError::InitFailed {
            name: "test-filter".to_owned(),
            path: path.clone(),
            message: "plugin panicked: test plugin panics in create".to_owned(),
        }
    );
}

#[test]
fn invalid_config_json_fails_init() {
    let path = plugin_path("chime_test_filter");
    let error = PluginHost::new(HostConfig::default())
        .load(&path, "{not json")
        .unwrap_err();
    match error {
        PluginError::InitFailed { name, message, .. } => {
            assert_eq!(name, "test-filter");
            assert!(message.starts_with("bad config:"), "{message}");
        }
        other => panic!("expected InitFailed, got {other:?}"),
    }
}

#[test]
fn load_all_goes_on_past_failures_and_lists_what_loaded() {
    let host = PluginHost::new(HostConfig::default());
    let filter = plugin_path("chime_test_filter");
    let transport = plugin_path("chime_test_transport");
    let uploader = plugin_path("chime_test_uploader");
    let bad = plugin_path("chime_test_bad_abi");
    let missing = PathBuf::from("/nonexistent/libmissing.so");
    let errors = host.load_all([
        (filter.clone(), "{}"),
        (missing.clone(), "{}"),
        (bad.clone(), "{}"),
        (transport.clone(), "{}"),
        (uploader.clone(), r#"{"chunk_size": 16}"#),
    ]);
    assert_eq!(errors.len(), 2, "{errors:?}");
    assert_eq!(errors[0], PluginError::NotFound { path: missing });
    assert!(matches!(
        errors[1],
        PluginError::AbiMismatch {
            found_major: 99,
            ..
        }
    ));

    let listed: Vec<(String, PluginKind, String, PathBuf)> = host
        .loaded_plugins()
        .into_iter()
        .map(|info| (info.name, info.kind, info.version, info.path))
        .collect();
    assert_eq!(
        listed,
        vec![
            (
                "test-filter".to_owned(),
                PluginKind::ContentFilter,
                "0.1.0".to_owned(),
                filter.canonicalize().unwrap()
            ),
            (
                "loop-transport".to_owned(),
                PluginKind::Transport,
                "0.1.0".to_owned(),
                transport.canonicalize().unwrap()
            ),
            (
                "dir-uploader".to_owned(),
                PluginKind::Uploader,
                "0.1.0".to_owned(),
                uploader.canonicalize().unwrap()
            ),
        ]
    );
    assert_eq!(host.content_filters().len(), 1);
    assert!(host.transport("loop-transport").is_some());
    assert!(host.transport("quic").is_none());
    assert!(host.uploader().is_some());
    let kinds: Vec<&str> = host
        .loaded_plugins()
        .iter()
        .map(|info| info.kind.as_str())
        .collect();
    assert_eq!(kinds, vec!["content_filter", "transport", "uploader"]);
}

#[test]
fn load_answers_the_typed_plugin() {
    let host = PluginHost::new(HostConfig::default());
    let plugin = host
        .load(plugin_path("chime_test_transport"), "{}")
        .unwrap();
    assert!(matches!(plugin, LoadedPlugin::Transport(_)));
    assert_eq!(plugin.info().name, "loop-transport");
    assert!(!plugin.info().status.disabled);
}

#[tokio::test]
async fn the_minimal_example_plugin_loads_and_blocks_its_word() {
    use chime_plugin_api::{ContentKind, Direction, FilterOutcome};

    let host = PluginHost::new(HostConfig::default());
    let plugin = host
        .load(
            plugin_path("chime_plugin_minimal"),
            r#"{"blocked_word": "spoiler"}"#,
        )
        .unwrap();
    let LoadedPlugin::ContentFilter(filter) = plugin else {
        panic!("not a filter")
    };
    assert_eq!(
        filter
            .filter("Big SPOILER ahead", Direction::Outgoing, ContentKind::Text)
            .await
            .unwrap(),
        FilterOutcome::Blocked {
            reason: "no spoiler please".to_owned()
        }
    );
    assert_eq!(
        filter
            .filter("hello", Direction::Outgoing, ContentKind::Text)
            .await
            .unwrap(),
        FilterOutcome::Pass
    );
}
