//! A peer that closes and redials at once, in a loop, is slowed by the
//! per-address claim bound and does not hurt other names.

use crate::support::{Reply, connected, get, peer, relay, within};
use http::StatusCode;
use ptth_relay::ClaimRate;
use ptth_relay::Settings;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// One claim as a reconnecting peer makes it: upgrade, read the answer's
/// status, close.
async fn claim_and_close(addr: std::net::SocketAddr) -> u16 {
    let mut tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    tcp.write_all(
        b"GET /reversehttp/storm HTTP/1.1\r\nHost: r\r\nConnection: upgrade\r\nUpgrade: ptth\r\n\
          ALPN: http%2F1.1\r\nAuthorization: Bearer t\r\nContent-Length: 0\r\n\r\n",
    )
    .await
    .unwrap();
    let mut head = [0; 12];
    tcp.read_exact(&mut head).await.unwrap();
    std::str::from_utf8(&head[9..12]).unwrap().parse().unwrap()
}

#[tokio::test]
async fn a_reconnect_loop_is_bounded_and_other_names_keep_serving() {
    let running = relay(Settings {
        claim_rate: ClaimRate {
            burst: 5,
            per_second: 5,
        },
        ..Settings::default()
    })
    .await;
    let handle = peer(running.addr, "lamp", "t", ptth::initiator::Builder::new());
    connected(&handle, 1).await;
    let addr = running.addr;
    let storm = tokio::spawn(async move {
        let mut statuses = Vec::new();
        for _ in 0..200 {
            statuses.push(claim_and_close(addr).await);
        }
        statuses
    });
    for _ in 0..20 {
        let Reply { status, .. } = get(&format!("http://{addr}/lamp/")).await;
        assert_eq!(status, StatusCode::OK);
    }
    let statuses = within(storm).await.unwrap();
    let switched = statuses.iter().filter(|s| **s == 101).count();
    let limited = statuses.iter().filter(|s| **s == 429).count();
    assert_eq!(switched + limited, statuses.len(), "{statuses:?}");
    // The burst of 5, less the claim the lamp made from the same address.
    assert!(switched >= 4, "the burst was not allowed: {switched}");
    assert!(
        limited > 100,
        "the loop was not slowed: {limited} of 200 refused"
    );
}
