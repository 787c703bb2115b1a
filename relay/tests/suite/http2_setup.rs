//! Peers whose channels are set up over HTTP/2 (extended CONNECT with
//! `:protocol: ptth`) claim names and serve the public like any other.

use crate::support;
use crate::support::{Reply, describe, get, relay, within};
use http::StatusCode;
use http::header::{AUTHORIZATION, HeaderValue, LINK};
use hyper::service::service_fn;
use ptth_relay::Settings;

fn initiator(token: &str) -> ptth::initiator::Builder {
    let bearer = HeaderValue::from_str(&format!("Bearer {token}")).unwrap();
    ptth::initiator::Builder::new().header(AUTHORIZATION, bearer)
}

#[tokio::test]
async fn channels_over_one_http2_connection_serve_a_name() {
    within(async {
        let running = relay(Settings::default()).await;
        let url = format!("http://{}/reversehttp/lamp", running.addr);
        let channels = initiator("t1").connect_http2(&url).await.unwrap();
        for _ in 0..2 {
            let transposed = channels.open().await.unwrap();
            assert_eq!(
                transposed.headers()[LINK],
                format!("<http://{}/lamp/>; rel=\"related\"", running.addr).as_str()
            );
            tokio::spawn(transposed.serve(service_fn(describe)));
        }
        for _ in 0..4 {
            let Reply { status, body, .. } = get(&format!("http://{}/lamp/x?y=1", running.addr)).await;
            assert_eq!(status, StatusCode::OK, "{body}");
            assert!(body.starts_with("GET /lamp/x?y=1\n"), "{body}");
        }
        // The name's token holds for channels as for upgrades.
        let error = initiator("t2")
            .connect_http2(&url)
            .await
            .unwrap()
            .open()
            .await
            .unwrap_err();
        assert!(
            matches!(&error, ptth::Error::Declined(declined) if declined.status == StatusCode::FORBIDDEN),
            "{error:?}"
        );
    })
    .await;
}

#[tokio::test]
async fn a_tunnel_set_up_over_http2_serves_a_name() {
    within(async {
        let running = relay(Settings::default()).await;
        let bearer = HeaderValue::from_static("Bearer t1");
        let tunnel =
            ptth::tunnel::Builder::new(format!("http://{}/reversehttp/lamp", running.addr))
                .initiator(ptth::initiator::Builder::new().header(AUTHORIZATION, bearer))
                .setup(ptth::Setup::Http2)
                .connections(2)
                .serve(service_fn(describe));
        let handle = tunnel.handle();
        tokio::spawn(tunnel);
        let status = support::connected(&handle, 2).await;
        assert_eq!(
            status.public_url.unwrap(),
            format!("http://{}/lamp/", running.addr).as_str()
        );
        let Reply { status, body, .. } = get(&format!("http://{}/lamp/", running.addr)).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        handle.shutdown();
        handle.stopped().await;
    })
    .await;
}
