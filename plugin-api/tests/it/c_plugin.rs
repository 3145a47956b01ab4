//! A plugin written in C against the generated header loads and works like a Rust one.
//!
//! Needs a C compiler (`$CC`, else `cc`); without one the test says so and passes.

use std::path::Path;
use std::process::Command;

use chime_plugin_api::host::{HostConfig, LoadedPlugin, PluginError, PluginHost};
use chime_plugin_api::{ContentKind, Direction, FilterOutcome};

#[tokio::test]
async fn a_c_plugin_built_from_the_header_loads_and_filters() {
    let crate_dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    let out = tempfile::tempdir().unwrap();
    let library = out.path().join(format!(
        "{}c_upper{}",
        std::env::consts::DLL_PREFIX,
        std::env::consts::DLL_SUFFIX
    ));
    let compiler = std::env::var("CC").unwrap_or_else(|_| "cc".to_owned());
    let built = Command::new(&compiler)
        .args(["-std=c99", "-Wall", "-Werror", "-shared", "-fPIC", "-o"])
        .arg(&library)
        .arg("-I")
        .arg(crate_dir.join("include"))
        .arg(crate_dir.join("tests/c/upper_filter.c"))
        .output();
    let built = match built {
        Ok(output) => output,
        Err(error) => {
            eprintln!("no C compiler ({compiler}: {error}); skipping");
            return;
        }
    };
    assert!(
        built.status.success(),
        "cc failed:\n{}",
        String::from_utf8_lossy(&built.stderr)
    );

    let host = PluginHost::new(HostConfig::default());
    let error = host.load(&library, r#"{"fail": true}"#).unwrap_err();
    assert_eq!(
        error,
        PluginError::InitFailed {
            name: "c-upper".to_owned(),
            path: library.clone(),
            message: "the C plugin was told to fail".to_owned(),
        }
    );
    let plugin = host.load(&library, "{}").unwrap();
    assert_eq!(
        (plugin.info().name.as_str(), plugin.info().version.as_str()),
        ("c-upper", "1.2.3")
    );
    let LoadedPlugin::ContentFilter(filter) = plugin else {
        panic!("not a filter")
    };
    assert_eq!(
        filter
            .filter("hello, 世界", Direction::Outgoing, ContentKind::Text)
            .await
            .unwrap(),
        FilterOutcome::Replaced("HELLO, 世界".to_owned())
    );
    assert_eq!(
        filter
            .filter("hello", Direction::Incoming, ContentKind::Text)
            .await
            .unwrap(),
        FilterOutcome::Pass
    );
}
