//! The files the relay serves itself under `/_ptth/`: the browser client
//! module and the demo page that uses it. The underscore keeps the prefix
//! out of name space (a name is a DNS label).

use bytes::Bytes;
use http::header::{CACHE_CONTROL, CONTENT_TYPE, HOST, HeaderValue};
use http::{Method, Request, Response, StatusCode};

use crate::http::headers::split_port;
use crate::http::{RelayBody, full, text};
use crate::settings::Routing;

/// The prefix of the relay's own files.
pub(crate) const PREFIX: &str = "/_ptth/";

const CLIENT: &str = include_str!("../../static/ptth.js");
const DEMO: &str = include_str!("../../static/demo.html");

/// Whether `request` is for one of the relay's own files: under
/// [`PREFIX`], and in host routing on the relay's own domain, where no
/// name's traffic goes.
pub(crate) fn wanted<B>(routing: &Routing, request: &Request<B>) -> bool {
    if !request.uri().path().starts_with(PREFIX) {
        return false;
    }
    match routing {
        Routing::Path => true,
        Routing::Host { domain } => request
            .headers()
            .get(HOST)
            .and_then(|host| host.to_str().ok())
            .map(|host| split_port(host).0)
            .is_some_and(|host| host.eq_ignore_ascii_case(domain)),
    }
}

/// The file, `404`, or `405` for anything but `GET` and `HEAD`.
pub(crate) fn serve<B>(request: &Request<B>) -> Response<RelayBody> {
    if request.method() != Method::GET && request.method() != Method::HEAD {
        return text(
            StatusCode::METHOD_NOT_ALLOWED,
            "the relay's files are read-only",
        );
    }
    let (body, kind) = match &request.uri().path()[PREFIX.len()..] {
        "ptth.js" => (CLIENT, "text/javascript; charset=utf-8"),
        "" | "demo.html" => (DEMO, "text/html; charset=utf-8"),
        _ => return text(StatusCode::NOT_FOUND, "no such file"),
    };
    let mut response = Response::new(full(Bytes::from_static(body.as_bytes())));
    let headers = response.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static(kind));
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    // Pages on other origins may import the module.
    headers.insert(
        http::header::ACCESS_CONTROL_ALLOW_ORIGIN,
        HeaderValue::from_static("*"),
    );
    response
}
