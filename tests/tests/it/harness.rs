//! The harness itself: a server process starts on a free port, dies on SIGKILL and comes back on
//! the same port and data dir — what the restart tests rely on.

use chime_tests::TestServer;
use tokio::net::TcpStream;

#[tokio::test]
async fn a_server_starts_on_a_free_port_and_restarts_on_the_same_one() {
    let mut server = TestServer::start().await;
    let port = server.port();
    assert_ne!(port, 0);
    assert_eq!(server.ws_url(), format!("ws://127.0.0.1:{port}/ws"));
    let first_pid = server.pid();
    assert_ne!(first_pid, 0);
    TcpStream::connect(("127.0.0.1", port))
        .await
        .expect("the server accepts connections");

    server.kill().await;
    assert_eq!(server.pid(), 0);
    assert!(
        TcpStream::connect(("127.0.0.1", port)).await.is_err(),
        "a killed server still accepts connections on {port}"
    );

    server.restart().await;
    assert_eq!(server.port(), port);
    assert_ne!(server.pid(), first_pid);
    assert!(server.data_dir().is_dir());
    TcpStream::connect(("127.0.0.1", port))
        .await
        .expect("the restarted server accepts connections");
}

#[tokio::test]
async fn a_server_starts_with_a_config_file() {
    let server = TestServer::start_with_config("multi_device_policy = \"single\"\n").await;
    assert_ne!(server.port(), 0);
    assert!(
        server.log_tail().lines().all(|l| !l.contains("ERROR")),
        "{}",
        server.log_tail()
    );
}
