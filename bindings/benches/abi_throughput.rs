//! Throughput of the C ABI: calls per second through `chime_call_sync`, and events per second
//! through `chime_poll` (draining a pump queue filled by real messages from a real server).
//!
//! `cargo bench -p chime-bindings --bench abi_throughput` (needs `chime-server` built:
//! `cargo build --release -p chime-server`). Prints figures; asserts only correctness.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::ffi::{CStr, CString, c_char, c_void};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use chime::{
    ChimeEngine, chime_call, chime_call_sync, chime_create, chime_destroy, chime_poll,
    chime_set_event_callback, chime_string_free,
};
use serde_json::{Value, json};

fn create(config: &Value) -> *mut ChimeEngine {
    let c = CString::new(config.to_string()).unwrap();
    let mut err: *mut c_char = std::ptr::null_mut();
    // SAFETY: valid string, writable error slot.
    let e = unsafe { chime_create(c.as_ptr(), &mut err) };
    assert!(!e.is_null());
    e
}

fn call_sync(engine: *mut ChimeEngine, method: &str, params: &Value) -> Value {
    let m = CString::new(method).unwrap();
    let p = CString::new(params.to_string()).unwrap();
    // SAFETY: valid strings.
    let s = unsafe { chime_call_sync(engine, m.as_ptr(), p.as_ptr()) };
    // SAFETY: returned by the library.
    let out = unsafe { CStr::from_ptr(s) }.to_string_lossy().into_owned();
    // SAFETY: returned by the library, freed once.
    unsafe { chime_string_free(s) };
    serde_json::from_str(&out).unwrap()
}

static EVENTS: AtomicUsize = AtomicUsize::new(0);
static ANSWERS: AtomicUsize = AtomicUsize::new(0);

unsafe extern "C" fn on_event(_e: *const c_char, json: *const c_char, _u: *mut c_void) {
    // Touch the JSON as a host would (length only).
    // SAFETY: valid during the call.
    let _ = unsafe { CStr::from_ptr(json) }.to_bytes().len();
    EVENTS.fetch_add(1, Ordering::Relaxed);
}

unsafe extern "C" fn on_answer(code: i32, _d: *const c_char, _j: *const c_char, _u: *mut c_void) {
    assert_eq!(code, 0);
    ANSWERS.fetch_add(1, Ordering::Relaxed);
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let server = rt.block_on(chime_tests::TestServer::start());
    let dirs = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let config = |dir: &std::path::Path, mode: &str| {
        json!({
            "sdk_app_id": chime_tests::APP_ID, "server_url": server.ws_url(), "data_dir": dir,
            "log_level": "none", "callback_mode": mode,
        })
    };
    let alice = create(&config(dirs.0.path(), "pump"));
    let bob = create(&config(dirs.1.path(), "thread"));
    for (e, u) in [(alice, "alice"), (bob, "bob")] {
        let r = call_sync(
            e,
            "login",
            &json!({ "user_id": u, "user_sig": server.user_sig(u) }),
        );
        assert_eq!(r, json!({}));
    }

    // 1. chime_call_sync: a quick getter, one thread, then four threads.
    const CALLS: usize = 20_000;
    let start = Instant::now();
    for _ in 0..CALLS {
        let r = call_sync(bob, "get_login_status", &json!({}));
        assert_eq!(r["status"], "logined");
    }
    let one = CALLS as f64 / start.elapsed().as_secs_f64();
    let handle = bob as usize;
    let start = Instant::now();
    let threads: Vec<_> = (0..4)
        .map(|_| {
            std::thread::spawn(move || {
                for _ in 0..CALLS / 4 {
                    let r = call_sync(handle as *mut ChimeEngine, "get_login_status", &json!({}));
                    assert_eq!(r["status"], "logined");
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    let four = CALLS as f64 / start.elapsed().as_secs_f64();
    println!(
        "chime_call_sync get_login_status: {one:.0} calls/s (1 thread), {four:.0} calls/s (4 threads)"
    );

    // 2. chime_poll: bob sends N messages; alice's host does not poll until they are all queued,
    //    then drains the queue with chime_poll(1000) and we time the drain.
    const N: usize = 5_000;
    // SAFETY: live handle; the callback is a static function.
    unsafe { chime_set_event_callback(alice, Some(on_event), std::ptr::null_mut()) };
    let method = CString::new("send_c2c_text_message").unwrap();
    for i in 0..N {
        while i - ANSWERS.load(Ordering::Relaxed) >= 200 {
            std::thread::sleep(Duration::from_micros(200));
        }
        let p = CString::new(json!({ "text": format!("m{i}"), "user_id": "alice" }).to_string())
            .unwrap();
        // SAFETY: live handle, valid strings.
        let rc = unsafe {
            chime_call(
                bob,
                method.as_ptr(),
                p.as_ptr(),
                Some(on_answer),
                std::ptr::null_mut(),
            )
        };
        assert_eq!(rc, 0);
    }
    let deadline = Instant::now() + Duration::from_secs(300);
    while ANSWERS.load(Ordering::Relaxed) < N {
        assert!(Instant::now() < deadline);
        std::thread::sleep(Duration::from_millis(5));
    }
    // Everything reached alice's queue once her unread count says so.
    loop {
        let c = call_sync(alice, "get_total_unread_message_count", &json!({}));
        if c["total_unread_count"].as_u64() == Some(N as u64) {
            break;
        }
        assert!(Instant::now() < deadline, "{c}");
        std::thread::sleep(Duration::from_millis(20));
    }
    std::thread::sleep(Duration::from_millis(300));
    let start = Instant::now();
    let mut ran = 0usize;
    loop {
        // SAFETY: live handle.
        let n = unsafe { chime_poll(alice, 1000) };
        if n == 0 {
            break;
        }
        ran += n as usize;
    }
    let secs = start.elapsed().as_secs_f64();
    println!(
        "chime_poll: {ran} events ({} per message) in {:.1} ms = {:.0} events/s",
        ran / N,
        secs * 1000.0,
        ran as f64 / secs
    );
    assert!(EVENTS.load(Ordering::Relaxed) >= N);
    // SAFETY: live handles, destroyed once.
    unsafe {
        chime_destroy(bob);
        chime_destroy(alice);
    }
    drop(server);
}
