//! The transport vtable end to end, through the loopback test plugin.

use std::time::Duration;

use chime_plugin_api::host::{LoadedPlugin, PluginError, TransportEvent, TransportPlugin};

use crate::support::{GENEROUS, host_with_timeout, plugin_path};

fn load() -> TransportPlugin {
    let host = host_with_timeout(GENEROUS);
    match host
        .load(plugin_path("chime_test_transport"), "{}")
        .unwrap()
    {
        LoadedPlugin::Transport(transport) => transport,
        other => panic!("expected a transport, got {other:?}"),
    }
}

async fn next_event(
    events: &mut tokio::sync::mpsc::UnboundedReceiver<TransportEvent>,
) -> TransportEvent {
    tokio::time::timeout(Duration::from_secs(10), events.recv())
        .await
        .expect("an event within 10 s")
        .expect("the event channel is open")
}

#[tokio::test]
async fn frames_sent_come_back_through_the_event_callback() {
    let transport = load();
    let (connection, mut events) = transport.connect("loop://server", "{}").await.unwrap();
    for index in 0..20u8 {
        connection.send(vec![index, 0xFF, index]).await.unwrap();
    }
    for index in 0..20u8 {
        assert_eq!(
            next_event(&mut events).await,
            TransportEvent::Frame(vec![index, 0xFF, index])
        );
    }
    connection.send(b"close".to_vec()).await.unwrap();
    assert_eq!(
        next_event(&mut events).await,
        TransportEvent::Closed("peer closed".to_owned())
    );
    connection.clone().close().await.unwrap();
    // After close no event can arrive: the host freed the callback's data, the channel ends.
    assert_eq!(
        tokio::time::timeout(Duration::from_secs(5), events.recv())
            .await
            .unwrap(),
        None
    );
    let error = connection.send(b"late".to_vec()).await.unwrap_err();
    assert_eq!(
        error,
        PluginError::CallFailed {
            name: "loop-transport".to_owned(),
            status: chime_plugin_api::abi::CHIME_STATUS_CLOSED,
            message: "connection closed".to_owned(),
        }
    );
}

#[tokio::test]
async fn a_refused_connect_is_an_error_naming_the_plugin() {
    let transport = load();
    let error = transport
        .connect("quic://127.0.0.1:1", "{}")
        .await
        .unwrap_err();
    assert_eq!(
        error,
        PluginError::CallFailed {
            name: "loop-transport".to_owned(),
            status: chime_plugin_api::abi::CHIME_STATUS_FAILED,
            message: "cannot connect to quic://127.0.0.1:1: not loop://".to_owned(),
        }
    );
}

#[tokio::test]
async fn dropping_every_handle_closes_the_connection() {
    let transport = load();
    let (connection, mut events) = transport.connect("loop://server", "{}").await.unwrap();
    connection.send(b"one".to_vec()).await.unwrap();
    assert_eq!(
        next_event(&mut events).await,
        TransportEvent::Frame(b"one".to_vec())
    );
    drop(connection);
    // The close runs on a call thread; then the callback's sender is freed and the channel ends.
    assert_eq!(
        tokio::time::timeout(Duration::from_secs(10), events.recv())
            .await
            .unwrap(),
        None
    );
}
