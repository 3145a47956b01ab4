//! Test helpers: build the plugin `cdylib`s once and find them by path.
//!
//! The plugins are workspace members but not dependencies of this crate (a `cdylib` cannot be a
//! normal dependency, and artifact dependencies are unstable), so the first test that needs them
//! runs `cargo build -p <plugins>` once per test process with the same cargo (`$CARGO`), the same
//! profile and the same target directory as this test binary, which lives in
//! `<target>/<profile>/deps/`. Cargo makes the build a no-op when they are fresh. With
//! `CHIME_PLUGINS_PREBUILT=1` (set by `.ci/run` after its `cargo build --workspace`, which builds
//! every plugin) the libraries are used as built: a `-p` build resolves dependency features for
//! its own package set and would compile a second variant of them inside a test.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::Duration;

use chime_plugin_api::host::{HostConfig, PluginHost};

/// Every plugin package the tests load.
const PACKAGES: [&str; 10] = [
    "chime-profanity-filter",
    "chime-plugin-minimal",
    "chime-test-filter",
    "chime-test-transport",
    "chime-test-uploader",
    "chime-test-bad-abi",
    "chime-test-future-minor",
    "chime-test-old-minor",
    "chime-test-translator",
    "chime-test-speech-to-text",
];

/// `<target>/<profile>` of this test binary.
fn profile_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("test executable path");
    let deps = exe.parent().expect("deps dir");
    deps.parent().expect("profile dir").to_path_buf()
}

fn build_plugins() -> PathBuf {
    let profile_dir = profile_dir();
    if std::env::var_os("CHIME_PLUGINS_PREBUILT").is_some_and(|v| v == "1") {
        return profile_dir;
    }
    let target_dir = profile_dir.parent().expect("target dir");
    let profile = match profile_dir.file_name().and_then(|name| name.to_str()) {
        Some("debug") => "dev".to_owned(),
        Some(other) => other.to_owned(),
        None => "dev".to_owned(),
    };
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace root");
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
    let mut command = Command::new(cargo);
    command
        .arg("build")
        .arg("--manifest-path")
        .arg(workspace.join("Cargo.toml"))
        .arg("--profile")
        .arg(&profile)
        .arg("--target-dir")
        .arg(target_dir);
    for package in PACKAGES {
        command.arg("-p").arg(package);
    }
    let output = command.output().expect("run cargo build for the plugins");
    assert!(
        output.status.success(),
        "building the plugins failed:\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    profile_dir
}

/// The path of plugin library `lib_name` (e.g. `chime_test_filter`), built on first use.
pub fn plugin_path(lib_name: &str) -> PathBuf {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    let dir = BUILT.get_or_init(build_plugins);
    let path = dir.join(format!(
        "{}{lib_name}{}",
        std::env::consts::DLL_PREFIX,
        std::env::consts::DLL_SUFFIX
    ));
    assert!(
        path.is_file(),
        "plugin library {} was not built",
        path.display()
    );
    path
}

/// The word lists shipped with the profanity filter.
pub fn wordlist(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../plugins/profanity-filter/wordlists")
        .join(name)
}

/// A host with the given call timeout and a small thread cap (8). Tests that do not test timeouts
/// use [`GENEROUS`], so a loaded machine cannot turn a slow call into a failure.
pub fn host_with_timeout(call_timeout: Duration) -> PluginHost {
    PluginHost::new(HostConfig {
        call_timeout,
        transfer_timeout: Duration::from_secs(60),
        failure_threshold: 3,
        max_call_threads: 8,
    })
}

/// The call timeout of tests that are not about timeouts.
pub const GENEROUS: Duration = Duration::from_secs(30);

/// The system C library: a real shared library that is not a Chime plugin.
pub fn non_plugin_library() -> Option<PathBuf> {
    [
        "/lib/x86_64-linux-gnu/libc.so.6",
        "/usr/lib/x86_64-linux-gnu/libc.so.6",
        "/lib/aarch64-linux-gnu/libc.so.6",
        "/usr/lib/aarch64-linux-gnu/libc.so.6",
        "/lib64/libc.so.6",
        "/usr/lib64/libc.so.6",
        "/usr/lib/libc.so.6",
        "/usr/lib/libSystem.B.dylib",
    ]
    .iter()
    .map(PathBuf::from)
    .find(|path| path.is_file())
}
