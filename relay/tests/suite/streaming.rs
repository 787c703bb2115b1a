//! Streaming crosses the relay as it happens: server-sent events arrive
//! one at a time, over HTTP/2 and HTTP/1.1 peers.

use crate::support;
use std::convert::Infallible;
use std::pin::Pin;
use std::task::{Context, Poll};

use crate::support::{connected, relay, within};
use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::{Body, Frame, Incoming};
use hyper::service::service_fn;
use ptth_relay::Settings;
use tokio::sync::mpsc;

/// A body whose chunks the test sends when it chooses.
struct Channel(mpsc::UnboundedReceiver<Bytes>);

impl Body for Channel {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        self.0
            .poll_recv(cx)
            .map(|chunk| chunk.map(|c| Ok(Frame::data(c))))
    }
}

#[tokio::test]
async fn server_sent_events_arrive_one_at_a_time() {
    for initiator in [
        ptth::initiator::Builder::new(),
        ptth::initiator::Builder::new().protocols([ptth::Protocol::Http1]),
    ] {
        let running = relay(Settings::default()).await;
        let (streams, mut opened) = mpsc::unbounded_channel();
        let service = service_fn(move |_: Request<Incoming>| {
            let (events, body) = mpsc::unbounded_channel();
            streams.send(events).unwrap();
            let response = Response::builder()
                .header("content-type", "text/event-stream")
                .body(Channel(body))
                .unwrap();
            async move { Ok::<_, Infallible>(response) }
        });
        let tunnel =
            ptth::tunnel::Builder::new(format!("http://{}/reversehttp/lamp?token=t", running.addr))
                .initiator(initiator)
                .serve(service);
        let handle = tunnel.handle();
        tokio::spawn(tunnel);
        connected(&handle, 1).await;
        let request = Request::get(format!("http://{}/lamp/events", running.addr))
            .body(Full::<Bytes>::default())
            .unwrap();
        let response = within(support::client().request(request)).await.unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(response.headers()["content-type"], "text/event-stream");
        let events = within(opened.recv()).await.unwrap();
        let mut body = response.into_body();
        for n in 1..=3 {
            let event = format!("data: {n}\n\n");
            events.send(Bytes::from(event.clone())).unwrap();
            let frame = within(body.frame()).await.unwrap().unwrap();
            assert_eq!(frame.into_data().unwrap(), event.as_bytes());
        }
        drop(events);
        assert!(
            within(body.frame()).await.is_none(),
            "the stream did not end"
        );
        handle.shutdown();
    }
}
