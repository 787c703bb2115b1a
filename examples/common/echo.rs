//! The echo service the examples serve: `200`, `text/plain`, the line
//! `METHOD PATH` and then the request body, streamed back as it arrives.

use std::convert::Infallible;
use std::pin::Pin;
use std::task::{Context, Poll};

use hyper::body::{Body, Bytes, Frame, Incoming};
use hyper::header::{CONTENT_TYPE, HeaderValue};
use hyper::{Request, Response};

pub struct EchoBody {
    line: Option<Bytes>,
    body: Incoming,
}

impl Body for EchoBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        if let Some(line) = self.line.take() {
            return Poll::Ready(Some(Ok(Frame::data(line))));
        }
        Pin::new(&mut self.body).poll_frame(cx)
    }
}

pub async fn echo(request: Request<Incoming>) -> Result<Response<EchoBody>, Infallible> {
    let target = request.uri().path_and_query().map_or("/", |pq| pq.as_str());
    let line = Bytes::from(format!("{} {}\n", request.method(), target));
    let body = EchoBody {
        line: Some(line),
        body: request.into_body(),
    };
    let mut response = Response::new(body);
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("text/plain"));
    Ok(response)
}
