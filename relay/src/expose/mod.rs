//! `expose`: the tunnel to a relay, forwarding every request it receives
//! to a local HTTP server.

mod config;
mod forward;
mod inspector;
mod origin;

use std::sync::Arc;

use http::Uri;
use http::header::{AUTHORIZATION, HeaderValue};
use http::uri::Scheme;
use ptth::tunnel::Phase;
use ptth::{Dialect, Protocol};

use crate::cli::{ExposeArgs, HostHeader};
use forward::{Forward, report};
use origin::Origin;

/// The URL to upgrade on: the relay's access path and the name. A relay
/// URL with no path gets the default access path.
pub fn claim_url(relay: &str, name: &str) -> Result<String, String> {
    let relay = &with_scheme(relay);
    let uri: Uri = relay
        .parse()
        .map_err(|error| format!("--relay {relay:?}: {error}"))?;
    let base = relay.trim_end_matches('/');
    Ok(match uri.path() {
        "" | "/" => format!("{base}/reversehttp/{name}"),
        _ => format!("{base}/{name}"),
    })
}

/// HTTP/2 streams a TCP device takes at once on each connection: one
/// per visitor (docs/relay.md, "TCP tunnels").
const TCP_STREAMS: u32 = 1024;

/// A TCP target's streams move bulk in large pieces: each direction of a
/// visitor copies through up to 1 MiB (starting at 8 KiB, so an idle
/// session stays small), the relay may send frames of up to 1 MiB, and
/// the windows and send buffer let several such pieces be in flight.
/// Bulk through a TCP name went from about rathole's speed to 1.2-1.5x
/// (docs/performance.md, "TCP tunnels"). This is the device's memory, for
/// its own visitors' transfers.
const TCP_BUFFER: usize = 1024 * 1024;
const TCP_FRAME: u32 = 1024 * 1024;
const TCP_STREAM_WINDOW: u32 = 16 * 1024 * 1024;
const TCP_CONNECTION_WINDOW: u32 = 64 * 1024 * 1024;
const TCP_SEND_BUFFER: usize = 8 * 1024 * 1024;

/// What `expose` forwards to.
enum Target {
    /// An HTTP server: `http://` or `https://`, with an authority.
    Http(Uri),
    /// A TCP server's `HOST:PORT` (docs/relay.md, "TCP tunnels").
    Tcp(String),
}

/// The local server `expose` forwards to.
fn target(args: &ExposeArgs) -> Result<Target, String> {
    let given = (args.origin.as_deref().or(args.to.as_deref()))
        .ok_or("name the local server: `expose 3000`, `expose HOST:PORT` or --to URL")?;
    if let Some(address) = tcp_address(given) {
        let address = address?;
        let http_only = [
            (
                !args.basic_auth.is_empty() || args.basic_auth_file.is_some(),
                "--basic-auth",
            ),
            (args.inspect.is_some(), "--inspect"),
            (args.strip_prefix, "--strip-prefix"),
            (args.host_header.is_some(), "--host-header"),
            (args.to_ca.is_some(), "--to-ca"),
        ];
        if let Some((_, flag)) = http_only.iter().find(|(given, _)| *given) {
            return Err(format!(
                "{flag} is for HTTP servers, not the TCP server {given:?}"
            ));
        }
        return Ok(Target::Tcp(address));
    }
    if args.port.is_some() {
        return Err("--port is for TCP servers: `expose tcp:22 --port 20022`".to_owned());
    }
    origin(given).map(Target::Http)
}

/// `HOST:PORT` from `tcp:PORT` (on loopback) or `tcp://HOST:PORT`; `None`
/// when `given` names no TCP server.
fn tcp_address(given: &str) -> Option<Result<String, String>> {
    let rest = given.strip_prefix("tcp:")?;
    let address = match rest.strip_prefix("//") {
        Some(address) => address.trim_end_matches('/').to_owned(),
        None => format!("127.0.0.1:{rest}"),
    };
    let port = address
        .rsplit_once(':')
        .map(|(host, port)| (host, port.parse::<u16>()));
    Some(match port {
        Some((host, Ok(port))) if !host.is_empty() && port != 0 => Ok(address),
        _ => Err(format!(
            "the TCP server {given:?} is tcp:PORT or tcp://HOST:PORT"
        )),
    })
}

/// The origin `expose` forwards to: `http://` or `https://`, with an
/// authority.
fn origin(given: &str) -> Result<Uri, String> {
    let origin: Uri =
        (origin_url(given).parse()).map_err(|error| format!("the origin {given:?}: {error}"))?;
    let scheme_fits =
        origin.scheme() == Some(&Scheme::HTTP) || origin.scheme() == Some(&Scheme::HTTPS);
    if !scheme_fits || origin.authority().is_none() {
        return Err(format!(
            "the origin {given:?} must be an http:// or https:// URL"
        ));
    }
    Ok(origin)
}

/// `text` with `http://` in front when it names no scheme.
fn with_scheme(text: &str) -> String {
    match text.contains("://") {
        true => text.to_owned(),
        false => format!("http://{text}"),
    }
}

/// The origin's URL from what `expose` was given: a port alone is on
/// loopback, and a missing scheme is `http://`.
fn origin_url(given: &str) -> String {
    match given.parse::<u16>() {
        Ok(port) => format!("http://127.0.0.1:{port}"),
        Err(_) => with_scheme(given),
    }
}

/// Runs the tunnel for `args` until it meets an error retrying cannot
/// fix; calls `announce` with the public URL once the first connection is
/// up.
pub async fn run(
    args: ExposeArgs,
    announce: impl FnOnce(String) + Send + 'static,
) -> Result<(), String> {
    run_inspected(args, announce, |_| {}).await
}

/// [`run`], calling `inspecting` with the inspector's URL once it
/// listens, with `--inspect`.
pub async fn run_inspected(
    mut args: ExposeArgs,
    announce: impl FnOnce(String) + Send + 'static,
    inspecting: impl FnOnce(String) + Send,
) -> Result<(), String> {
    config::apply(&mut args)?;
    let mut urls = Vec::new();
    for relay in &args.relay {
        urls.push(claim_url(relay, args.name.as_deref().unwrap_or_default())?);
    }
    let Some((url, more)) = urls.split_first() else {
        return Err(
            "name the relay: --relay URL, PTTH_RELAY, or `relay = \"URL\"` in the config file"
                .to_owned(),
        );
    };
    let target = target(&args)?;
    // Without --token, a token of this run's own: the relay refuses a
    // claim without one on a held name, and this run's connections and
    // reconnects must all hold the name it got.
    let token = args
        .token
        .clone()
        .unwrap_or_else(crate::token::random_token);
    let bearer = HeaderValue::from_str(&format!("Bearer {token}"))
        .map_err(|_| "--token holds characters a header cannot".to_owned())?;
    let mut initiator = ptth::initiator::Builder::new().header(AUTHORIZATION, bearer);
    if args.strip_prefix {
        let yes = HeaderValue::from_static("?1");
        initiator = initiator.header(crate::http::claim_fields::PTTH_STRIP_PREFIX, yes);
    }
    if let Target::Tcp(_) = target {
        let port = HeaderValue::from(args.port.unwrap_or(0));
        initiator = initiator.header(crate::http::claim_fields::PTTH_TCP_PORT, port);
    }
    if args.h1 {
        initiator = initiator.protocols([Protocol::Http1]);
    }
    if args.legacy {
        initiator = initiator.dialect(Dialect::Legacy);
    }
    if let Some(ca) = &args.relay_ca {
        initiator = initiator.trust(crate::pem::chain(ca)?);
    }
    let mut tunnel = ptth::tunnel::Builder::new(url.as_str()).initiator(initiator);
    for url in more {
        tunnel = tunnel.also(url.as_str());
    }
    if let Some(connections) = args.connections {
        tunnel = tunnel.connections(connections);
    }
    if args.http2_setup {
        tunnel = tunnel.setup(ptth::Setup::Http2);
    }
    let tunnel = match target {
        Target::Http(origin) => {
            let mut forward = Forward {
                origin: Origin::new(origin, args.to_ca.as_deref())?,
                rewrite_host: args.host_header == Some(HostHeader::Rewrite),
                guard: Arc::new(crate::visitors::guard(&args)?),
                inspector: None,
            };
            forward.inspector = inspector::start(&args, &forward, inspecting).await?;
            tunnel.serve(forward)
        }
        Target::Tcp(address) => {
            // One stream per visitor, held for its session: hyper's 200
            // would turn away visitors the relay lets in (1,024 per name
            // by default) on a device with one connection.
            let mut server = ptth::initiator::Server::new();
            server = server.http2(|http2| {
                http2
                    .max_concurrent_streams(TCP_STREAMS)
                    .max_frame_size(TCP_FRAME)
                    .initial_stream_window_size(TCP_STREAM_WINDOW)
                    .initial_connection_window_size(TCP_CONNECTION_WINDOW)
                    .max_send_buf_size(TCP_SEND_BUFFER);
            });
            // `--allow-ip` judges the visitor's address the relay puts in
            // each CONNECT; no ranges let every visitor through.
            let guard = crate::visitors::guard(&args)?;
            tunnel
                .server(server)
                .serve(guard.service(ptth::connect::Dial::host(address).buffer_size(TCP_BUFFER)))
        }
    };
    let handle = tunnel.handle();
    let url = url.clone();
    tokio::spawn(async move {
        let up = handle
            .wait_for(|s| s.connected > 0 || s.phase != Phase::Running)
            .await;
        if up.connected > 0 {
            let public = up.public_url.as_ref().map_or(url, Uri::to_string);
            // `http::Uri` writes `tcp://host:port` with a path of `/`.
            let public = match public.starts_with("tcp://") {
                true => public.trim_end_matches('/').to_owned(),
                false => public,
            };
            announce(public);
        }
    });
    tunnel.await.map_err(|error| report(&error))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origins_and_relays_may_be_written_short() {
        for (given, origin) in [
            ("3000", "http://127.0.0.1:3000"),
            ("localhost:8000", "http://localhost:8000"),
            ("http://10.0.0.2:80/app", "http://10.0.0.2:80/app"),
            ("https://example.org", "https://example.org"),
        ] {
            assert_eq!(origin_url(given), origin, "{given}");
        }
        for (given, address) in [
            ("tcp:22", Some(Ok("127.0.0.1:22"))),
            ("tcp://10.0.0.2:5432", Some(Ok("10.0.0.2:5432"))),
            ("tcp://[::1]:22/", Some(Ok("[::1]:22"))),
            ("tcp://db.internal:5432", Some(Ok("db.internal:5432"))),
            ("tcp:0", Some(Err(()))),
            ("tcp:ssh", Some(Err(()))),
            ("tcp://:22", Some(Err(()))),
            ("tcp://host", Some(Err(()))),
            ("3000", None),
            ("http://tcp:22", None),
        ] {
            let got = tcp_address(given).map(|got| got.map_err(|_| ()));
            let expected = address.map(|address| address.map(str::to_owned));
            assert_eq!(got, expected, "{given}");
        }
        assert_eq!(
            claim_url("relay.example:8080", "lamp").unwrap(),
            "http://relay.example:8080/reversehttp/lamp"
        );
    }

    #[test]
    fn claim_urls_add_the_default_access_path_only_to_a_bare_relay() {
        assert_eq!(
            claim_url("http://127.0.0.1:8080", "lamp").unwrap(),
            "http://127.0.0.1:8080/reversehttp/lamp"
        );
        assert_eq!(
            claim_url("https://relay.example/peers/", "lamp").unwrap(),
            "https://relay.example/peers/lamp"
        );
        assert!(claim_url("http://exa mple", "lamp").is_err());
    }
}
