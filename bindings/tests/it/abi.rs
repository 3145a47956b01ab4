//! The C ABI's contract, called directly: fault cases that must never crash the host, both
//! callback modes, pump mode under a burst, several engines in one process.

use std::ffi::{CStr, CString, c_char, c_void};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chime::{
    ChimeEngine, chime_call, chime_call_sync, chime_create, chime_destroy, chime_poll,
    chime_set_event_callback, chime_string_free, chime_version,
};
use chime_tests::TestServer;
use serde_json::{Value, json};

use crate::support::{call_sync, config, create, take};

const WAIT: Duration = Duration::from_secs(30);

/// A config pointing at a port nothing listens on (for tests that never log in).
fn offline(dir: &std::path::Path, extra: Value) -> Value {
    config("ws://127.0.0.1:1/ws", dir, extra)
}

/// Everything a callback or event delivered, recorded as JSON in arrival order.
#[derive(Default)]
struct Recorder {
    items: Mutex<Vec<Value>>,
    thread: Mutex<Option<std::thread::ThreadId>>,
}

unsafe extern "C" fn record_answer(
    code: i32,
    desc: *const c_char,
    json: *const c_char,
    user_data: *mut c_void,
) {
    // SAFETY: user_data is the `Recorder` the test keeps alive; strings valid during the call.
    let rec = unsafe { &*(user_data as *const Recorder) };
    let desc = unsafe { CStr::from_ptr(desc) }
        .to_string_lossy()
        .into_owned();
    let json: Value = serde_json::from_str(&unsafe { CStr::from_ptr(json) }.to_string_lossy())
        .expect("callback JSON parses");
    *rec.thread.lock().unwrap() = Some(std::thread::current().id());
    rec.items
        .lock()
        .unwrap()
        .push(json!({ "code": code, "desc": desc, "json": json }));
}

unsafe extern "C" fn record_event(
    event: *const c_char,
    json: *const c_char,
    user_data: *mut c_void,
) {
    // SAFETY: as in `record_answer`.
    let rec = unsafe { &*(user_data as *const Recorder) };
    let name = unsafe { CStr::from_ptr(event) }
        .to_string_lossy()
        .into_owned();
    let data: Value = serde_json::from_str(&unsafe { CStr::from_ptr(json) }.to_string_lossy())
        .expect("event JSON parses");
    *rec.thread.lock().unwrap() = Some(std::thread::current().id());
    rec.items
        .lock()
        .unwrap()
        .push(json!({ "event": name, "data": data }));
}

fn ptr(rec: &Recorder) -> *mut c_void {
    rec as *const Recorder as *mut c_void
}

fn call(engine: *mut ChimeEngine, method: &str, params: &str, rec: &Recorder) -> i32 {
    let m = CString::new(method).unwrap();
    let p = CString::new(params).unwrap();
    // SAFETY: valid strings; `rec` outlives the engine in every test.
    unsafe {
        chime_call(
            engine,
            m.as_ptr(),
            p.as_ptr(),
            Some(record_answer),
            ptr(rec),
        )
    }
}

fn wait_for(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + WAIT;
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(5));
    }
}

#[test]
fn version_is_the_crate_version() {
    // SAFETY: a static NUL-terminated string.
    let v = unsafe { CStr::from_ptr(chime_version()) };
    assert_eq!(v.to_str().unwrap(), env!("CARGO_PKG_VERSION"));
}

#[test]
fn null_stale_and_destroyed_handles_answer_6013_and_never_crash() {
    let null: *mut ChimeEngine = std::ptr::null_mut();
    let bogus = 0xdead_beef_usize as *mut ChimeEngine;
    let rec = Recorder::default();
    for h in [null, bogus] {
        assert_eq!(call(h, "get_version", "{}", &rec), 6013);
        assert_eq!(call_sync(h, "get_version", &json!({}))["code"], json!(6013));
        // SAFETY: any handle value is accepted by these functions.
        unsafe {
            assert_eq!(chime_poll(h, 10), -6013);
            chime_set_event_callback(h, Some(record_event), ptr(&rec));
            chime_destroy(h);
        }
    }
    // SAFETY: null is accepted.
    unsafe { chime_string_free(std::ptr::null_mut()) };

    let dir = tempfile::tempdir().unwrap();
    let engine = create(&offline(dir.path(), json!({})));
    assert_eq!(
        call_sync(engine, "get_version", &json!({})),
        json!({ "version": env!("CARGO_PKG_VERSION") })
    );
    // SAFETY: a live handle, then the same handle twice more.
    unsafe { chime_destroy(engine) };
    assert_eq!(
        call_sync(engine, "get_version", &json!({})),
        json!({ "code": 6013, "desc": "unknown or destroyed engine handle" })
    );
    assert_eq!(call(engine, "get_version", "{}", &rec), 6013);
    // SAFETY: double destroy is a no-op.
    unsafe { chime_destroy(engine) };
    assert!(rec.items.lock().unwrap().is_empty(), "no callback ran");
}

#[test]
fn bad_strings_and_json_answer_6027_and_unknown_methods_6017() {
    let dir = tempfile::tempdir().unwrap();
    let engine = create(&offline(dir.path(), json!({})));
    let rec = Recorder::default();
    let bad_utf8 = b"{\"text\":\"\xff\xfe\"}\0";
    let method = CString::new("create_text_message").unwrap();
    // SAFETY: NUL-terminated byte strings (not UTF-8 on purpose) and null pointers.
    unsafe {
        let p = bad_utf8.as_ptr() as *const c_char;
        assert_eq!(
            chime_call(engine, method.as_ptr(), p, Some(record_answer), ptr(&rec)),
            6027
        );
        let a: Value =
            serde_json::from_str(&take(chime_call_sync(engine, method.as_ptr(), p))).unwrap();
        assert_eq!(a["code"], json!(6027));
        let a: Value =
            serde_json::from_str(&take(chime_call_sync(engine, p, c"{}".as_ptr()))).unwrap();
        assert_eq!(a["code"], json!(6017));
        assert_eq!(a["desc"], json!("method is not valid UTF-8"));
        let a: Value = serde_json::from_str(&take(chime_call_sync(
            engine,
            std::ptr::null(),
            std::ptr::null(),
        )))
        .unwrap();
        assert_eq!(a, json!({ "code": 6017, "desc": "method is null" }));
        // Null params mean `{}`.
        let a: Value = serde_json::from_str(&take(chime_call_sync(
            engine,
            c"get_login_status".as_ptr(),
            std::ptr::null(),
        )))
        .unwrap();
        assert_eq!(a, json!({ "status": "logout" }));
    }
    assert_eq!(
        call(engine, "create_text_message", "{\"text\":", &rec),
        6027
    );
    assert_eq!(
        call_sync(engine, "create_text_message", &json!("x"))["code"],
        json!(6017),
        "a non-object params answers 6017"
    );
    let m = CString::new("create_text_message").unwrap();
    let p = CString::new("{\"text\": [1,").unwrap();
    // SAFETY: valid strings.
    let a = take(unsafe { chime_call_sync(engine, m.as_ptr(), p.as_ptr()) });
    assert_eq!(
        serde_json::from_str::<Value>(&a).unwrap()["code"],
        json!(6027)
    );

    // An unknown method is accepted and answers 6017 naming it, exactly once.
    assert_eq!(call(engine, "no_such_method", "{}", &rec), 0);
    wait_for("the unknown-method answer", || {
        !rec.items.lock().unwrap().is_empty()
    });
    // The lifecycle methods belong to chime_create / chime_destroy.
    assert_eq!(
        call_sync(engine, "un_init_sdk", &json!({}))["code"],
        json!(6017)
    );
    assert_eq!(call(engine, "init_sdk", "{}", &rec), 6017);
    // SAFETY: a live handle.
    unsafe { chime_destroy(engine) };
    let items = rec.items.lock().unwrap().clone();
    assert_eq!(
        items,
        vec![json!({
            "code": 6017,
            "desc": "unknown method: no_such_method",
            "json": { "code": 6017, "desc": "unknown method: no_such_method" },
        })]
    );
}

#[test]
fn chime_create_reports_bad_configs_through_error_out() {
    let create_err = |text: Option<&[u8]>| -> Value {
        let mut err: *mut c_char = std::ptr::null_mut();
        let owned = text.map(|t| t.to_vec());
        let p = owned
            .as_ref()
            .map_or(std::ptr::null(), |t| t.as_ptr() as *const c_char);
        // SAFETY: null or NUL-terminated bytes; a writable error slot.
        let engine = unsafe { chime_create(p, &mut err) };
        assert!(engine.is_null());
        serde_json::from_str(&take(err)).unwrap()
    };
    assert_eq!(create_err(None)["code"], json!(6017));
    assert_eq!(create_err(Some(b"{\"sdk_app_id\":\0"))["code"], json!(6027));
    assert_eq!(create_err(Some(b"\xff\0"))["code"], json!(6027));
    let dir = tempfile::tempdir().unwrap();
    let unknown = offline(dir.path(), json!({ "callback_mod": "pump" }));
    let text = format!("{unknown}\0");
    let e = create_err(Some(text.as_bytes()));
    assert_eq!(e["code"], json!(6017));
    assert!(e["desc"].as_str().unwrap().contains("callback_mod"), "{e}");
    let zero = offline(dir.path(), json!({ "sdk_app_id": 0 }));
    let e = create_err(Some(format!("{zero}\0").as_bytes()));
    assert_eq!(e, json!({ "code": 6017, "desc": "sdk_app_id is required" }));
    // A null error slot is allowed.
    // SAFETY: null config and null error slot.
    assert!(unsafe { chime_create(std::ptr::null(), std::ptr::null_mut()) }.is_null());
}

#[test]
fn many_threads_call_at_once_while_another_destroys() {
    let dir = tempfile::tempdir().unwrap();
    let engine = create(&offline(dir.path(), json!({})));
    let handle = engine as usize;
    let answers = Arc::new(AtomicUsize::new(0));
    let accepted = Arc::new(AtomicUsize::new(0));
    let rec = Arc::new(Recorder::default());
    let threads: Vec<_> = (0..8)
        .map(|t| {
            let answers = answers.clone();
            let accepted = accepted.clone();
            let rec = rec.clone();
            std::thread::spawn(move || {
                let engine = handle as *mut ChimeEngine;
                for i in 0..150 {
                    let a = call_sync(engine, "get_version", &json!({}));
                    assert!(
                        a == json!({ "version": env!("CARGO_PKG_VERSION") })
                            || a["code"] == json!(6013),
                        "thread {t} call {i}: {a}"
                    );
                    answers.fetch_add(1, Ordering::Relaxed);
                    match call(engine, "get_login_status", "{}", &rec) {
                        0 => {
                            accepted.fetch_add(1, Ordering::Relaxed);
                        }
                        code => assert_eq!(code, 6013),
                    }
                }
            })
        })
        .collect();
    wait_for("some calls", || answers.load(Ordering::Relaxed) > 200);
    // SAFETY: destroying while others call is part of the contract.
    unsafe { chime_destroy(engine) };
    for t in threads {
        t.join().expect("no caller thread panicked");
    }
    assert_eq!(answers.load(Ordering::Relaxed), 8 * 150);
    // chime_destroy returned only after every accepted call had its one callback; none came
    // twice, none after.
    let items = rec.items.lock().unwrap();
    assert_eq!(items.len(), accepted.load(Ordering::Relaxed));
    for item in items.iter() {
        assert!(
            item["json"] == json!({ "status": "logout" }) || item["code"] == json!(6013),
            "{item}"
        );
    }
}

#[test]
fn pump_mode_runs_callbacks_and_events_only_inside_poll_on_the_polling_thread() {
    let dir = tempfile::tempdir().unwrap();
    let engine = create(&offline(dir.path(), json!({ "callback_mode": "pump" })));
    let rec = Recorder::default();
    // SAFETY: a live handle; `rec` outlives it.
    unsafe { chime_set_event_callback(engine, Some(record_event), ptr(&rec)) };
    assert_eq!(call(engine, "get_login_status", "{}", &rec), 0);
    assert_eq!(call(engine, "no_such_method", "{}", &rec), 0);
    std::thread::sleep(Duration::from_millis(200));
    assert!(
        rec.items.lock().unwrap().is_empty(),
        "nothing runs before poll"
    );
    // SAFETY: a live handle.
    assert_eq!(unsafe { chime_poll(engine, 0) }, 0);
    // Each poll runs at most `max` items; the two answers are queued when their calls finish
    // (not at a fixed time on a loaded machine), so poll until both ran, one at a time.
    let mut ran = 0;
    wait_for("both answers to run inside poll", || {
        // SAFETY: a live handle.
        let n = unsafe { chime_poll(engine, 1) };
        assert!(n <= 1, "poll(1) ran {n} items");
        ran += n;
        ran == 2
    });
    // SAFETY: a live handle.
    assert_eq!(unsafe { chime_poll(engine, 10) }, 0);
    // The two calls ran concurrently: each answered once, in whichever order they finished.
    let mut items = rec.items.lock().unwrap().clone();
    items.sort_by_key(|i| i["code"].as_i64());
    assert_eq!(
        items,
        vec![
            json!({ "code": 0, "desc": "", "json": { "status": "logout" } }),
            json!({ "code": 6017, "desc": "unknown method: no_such_method",
                    "json": { "code": 6017, "desc": "unknown method: no_such_method" } }),
        ]
    );
    assert_eq!(
        *rec.thread.lock().unwrap(),
        Some(std::thread::current().id())
    );
    // Destroy hands over what is still queued, on the destroying thread. No ABI call tells that
    // an answer is queued, so a second, blocking call of the same method is the barrier: both
    // calls run on the engine's one actor thread in the order they were made and ask the
    // connection actor in that order, so the first call's answer is queued (on that thread)
    // before the second's reaches us.
    assert_eq!(call(engine, "get_login_user", "{}", &rec), 0);
    assert_eq!(
        call_sync(engine, "get_login_user", &json!({})),
        json!({ "user_id": "" })
    );
    assert_eq!(
        rec.items.lock().unwrap().len(),
        2,
        "the queued answer runs only inside poll or destroy"
    );
    // SAFETY: a live handle.
    unsafe { chime_destroy(engine) };
    assert_eq!(
        rec.items.lock().unwrap().last().cloned(),
        Some(json!({ "code": 0, "desc": "", "json": { "user_id": "" } }))
    );
}

unsafe extern "C" fn count_answer(
    code: i32,
    _desc: *const c_char,
    _json: *const c_char,
    user_data: *mut c_void,
) {
    // SAFETY: user_data is the test's `Counts`, alive until every answer came.
    let counts = unsafe { &*(user_data as *const Counts) };
    if code == 0 {
        counts.ok.fetch_add(1, Ordering::SeqCst);
    } else {
        counts.failed.fetch_add(1, Ordering::SeqCst);
    }
}

#[derive(Default)]
struct Counts {
    ok: AtomicUsize,
    failed: AtomicUsize,
}

/// Pump mode under a burst, with two engines in this one process: bob (thread mode) sends 10,000
/// messages while alice's host polls slowly (20 items every 5 ms, on one thread); every
/// `on_recv_new_message` reaches alice's host exactly once, in seq order, nothing dropped.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pump_mode_loses_nothing_in_a_burst_of_10000_while_the_host_polls_slowly() {
    const N: usize = 10_000;
    const IN_FLIGHT: usize = 200;
    let server = TestServer::start().await;
    let url = server.ws_url();
    let alice_sig = server.user_sig("alice");
    let bob_sig = server.user_sig("bob");
    let host = tokio::task::spawn_blocking(move || {
        let dirs = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let alice = create(&config(
            &url,
            dirs.0.path(),
            json!({ "callback_mode": "pump" }),
        ));
        let bob = create(&config(&url, dirs.1.path(), json!({})));
        let rec = Recorder::default();
        // SAFETY: a live handle; `rec` outlives it.
        unsafe { chime_set_event_callback(alice, Some(record_event), ptr(&rec)) };
        let login = |e, user: &str, sig: &str| {
            assert_eq!(
                call_sync(e, "login", &json!({ "user_id": user, "user_sig": sig })),
                json!({})
            );
        };
        login(alice, "alice", &alice_sig);
        login(bob, "bob", &bob_sig);

        let counts = Arc::new(Counts::default());
        let sender = {
            let counts = counts.clone();
            let bob = bob as usize;
            std::thread::spawn(move || {
                let method = CString::new("send_c2c_text_message").unwrap();
                for i in 0..N {
                    let deadline = Instant::now() + WAIT;
                    while i
                        - counts.ok.load(Ordering::SeqCst)
                        - counts.failed.load(Ordering::SeqCst)
                        >= IN_FLIGHT
                    {
                        assert!(Instant::now() < deadline, "sends stalled at {i}");
                        std::thread::sleep(Duration::from_millis(1));
                    }
                    let params = CString::new(
                        json!({ "text": i.to_string(), "user_id": "alice" }).to_string(),
                    )
                    .unwrap();
                    // SAFETY: a live handle; `counts` outlives every answer (waited below).
                    let r = unsafe {
                        chime_call(
                            bob as *mut ChimeEngine,
                            method.as_ptr(),
                            params.as_ptr(),
                            Some(count_answer),
                            Arc::as_ptr(&counts) as *mut c_void,
                        )
                    };
                    assert_eq!(r, 0);
                }
            })
        };

        // The host's frames: at most 20 items each, every 5 ms.
        let received = || {
            rec.items
                .lock()
                .unwrap()
                .iter()
                .filter(|i| i["event"] == json!("on_recv_new_message"))
                .count()
        };
        let deadline = Instant::now() + Duration::from_secs(600);
        let mut frames = 0u64;
        while received() < N {
            assert!(
                Instant::now() < deadline,
                "only {} of {N} messages after {frames} frames",
                received()
            );
            // SAFETY: a live handle.
            let n = unsafe { chime_poll(alice, 20) };
            assert!((0..=20).contains(&n), "{n}");
            frames += 1;
            std::thread::sleep(Duration::from_millis(5));
        }
        sender.join().expect("sender");
        wait_for("every send answered", || {
            counts.ok.load(Ordering::SeqCst) + counts.failed.load(Ordering::SeqCst) == N
        });
        assert_eq!(counts.ok.load(Ordering::SeqCst), N);
        assert_eq!(
            *rec.thread.lock().unwrap(),
            Some(std::thread::current().id()),
            "events ran on the polling thread"
        );
        // SAFETY: live handles, destroyed once.
        unsafe {
            chime_destroy(bob);
            chime_destroy(alice);
        }
        let items = rec.items.lock().unwrap().clone();
        (items, frames)
    });
    let (items, frames) = host.await.unwrap();
    assert!(
        items
            .iter()
            .all(|i| i["event"] != json!("on_events_dropped")),
        "nothing dropped"
    );
    let seqs: Vec<u64> = items
        .iter()
        .filter(|i| i["event"] == json!("on_recv_new_message"))
        .map(|i| i["data"]["message"]["seq"].as_u64().unwrap())
        .collect();
    assert_eq!(
        seqs,
        (1..=N as u64).collect::<Vec<_>>(),
        "every message once, in seq order"
    );
    let mut texts: Vec<u64> = items
        .iter()
        .filter(|i| i["event"] == json!("on_recv_new_message"))
        .map(|i| chime_tests::text_of(&i["data"]["message"]).parse().unwrap())
        .collect();
    texts.sort_unstable();
    assert_eq!(texts, (0..N as u64).collect::<Vec<_>>());
    eprintln!("burst: {} items over {frames} frames", items.len());
}

/// Pump-queue overflow through the C ABI: with room for 2 events, the login's later events are
/// dropped and one `on_events_dropped {count}` marks the gap, after what was kept.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pump_overflow_keeps_the_first_events_and_marks_the_gap() {
    let server = TestServer::start().await;
    let url = server.ws_url();
    let sig = server.user_sig("olive");
    let items = tokio::task::spawn_blocking(move || {
        let dir = tempfile::tempdir().unwrap();
        let engine = create(&config(
            &url,
            dir.path(),
            json!({ "callback_mode": "pump", "pump_queue_capacity": 2 }),
        ));
        let rec = Recorder::default();
        // SAFETY: a live handle; `rec` outlives it.
        unsafe { chime_set_event_callback(engine, Some(record_event), ptr(&rec)) };
        let login = json!({ "user_id": "olive", "user_sig": sig });
        assert_eq!(call_sync(engine, "login", &login), json!({}));
        // The post-login sync's first event overflows the queue while nobody polls. It is
        // emitted by the message actor when it handles the `Online` the connection actor sends
        // in the same step that answers the login; so a call the message actor answers after
        // the login's answer (its mailbox is in order) comes after that event was offered.
        let created = call_sync(engine, "create_text_message", &json!({ "text": "barrier" }));
        assert_eq!(chime_tests::text_of(&created), "barrier", "{created}");
        // SAFETY: a live handle.
        while unsafe { chime_poll(engine, 10) } > 0 {}
        // SAFETY: a live handle.
        unsafe { chime_destroy(engine) };
        rec.items.lock().unwrap().clone()
    })
    .await
    .unwrap();
    let names: Vec<&str> = items.iter().map(|i| i["event"].as_str().unwrap()).collect();
    assert_eq!(
        names,
        ["on_connecting", "on_connect_success", "on_events_dropped"],
        "{items:?}"
    );
    assert!(
        items[2]["data"]["count"].as_u64().unwrap() >= 1,
        "{items:?}"
    );
}
