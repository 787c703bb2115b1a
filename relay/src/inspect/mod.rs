//! The inspector of `expose --inspect ADDR`: the recent exchanges, live,
//! on a page and as JSON, and replays of them to the origin.
//!
//! What passes is recorded without holding it up ([`Inspector`]): heads as
//! they come, the first 64 KiB of each body as its frames pass. The
//! history is bounded ([`history`]), and the API (module `api`) serves it:
//!
//! - `GET /`: the page; `?replay=latest` replays the newest exchange once
//!   the page has one (a link to bookmark).
//! - `GET /api/requests[?after=ID]`: the exchanges, newest first, as
//!   [`history::Exchange::json`] writes them.
//! - `GET /api/requests/{id}`: one of them.
//! - `POST /api/requests/{id}/replay`: the request again, through
//!   `expose`'s own forwarding; the new exchange's JSON, 404 for an id no
//!   longer (or never) kept, 409 when the request's body was cut.
//!
//! The page polls `GET /api/requests?after=ID` every second rather than
//! holding a stream of events open: a second is quick enough for a
//! person, no connection waits on the server and none needs a bound, and
//! scripts use the same call.
//!
//! The inspector shows the secrets that pass (`Authorization`, cookies),
//! so it listens on loopback unless told otherwise. It names nothing of
//! `expose`: the replay reaches the origin through the function
//! `expose` hands it.

mod api;
pub mod history;
mod record;

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use http::{Request, Response};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

use crate::http::RelayBody;
pub use record::{Inspector, Recording};

/// Sends a request to the origin the way `expose` forwards a visitor's,
/// and gives its response.
pub type Replay = Arc<
    dyn Fn(Request<RelayBody>) -> Pin<Box<dyn Future<Output = Response<RelayBody>> + Send>>
        + Send
        + Sync,
>;

/// How long a connection may take to send a request's head.
const HEAD_TIMEOUT: Duration = Duration::from_secs(10);

/// How long one connection is served before it is closed.
const LIFETIME: Duration = Duration::from_secs(300);

/// How long a closing connection may take to finish its request: a
/// replay waits up to 30 s for the origin, twice.
const CLOSING: Duration = Duration::from_secs(65);

/// How many connections the inspector serves at once: a few tabs and
/// scripts; past that, new ones are closed.
const CONNECTIONS: usize = 32;

/// Refuses `addr` when it is not loopback and `public` was not given:
/// the inspector shows the secrets that pass through.
pub fn check_address(addr: SocketAddr, public: bool) -> Result<(), String> {
    if addr.ip().is_loopback() || public {
        return Ok(());
    }
    Err(format!(
        "--inspect {addr} is not a loopback address, and the inspector shows the headers \
         and bodies that pass, secrets among them; give --inspect-public as well to \
         listen there anyway"
    ))
}

/// Listens on `addr`, once [`check_address`] allows it.
pub async fn listen(addr: SocketAddr, public: bool) -> Result<TcpListener, String> {
    check_address(addr, public)?;
    TcpListener::bind(addr)
        .await
        .map_err(|error| format!("the inspector cannot listen on {addr}: {error}"))
}

/// Serves the page and the API on `listener`, each connection over
/// HTTP/1.1 with a bounded wait for each request's head.
pub async fn serve(listener: TcpListener, inspector: Inspector, replay: Replay) {
    let places = Arc::new(Semaphore::new(CONNECTIONS));
    while let Ok((tcp, _)) = listener.accept().await {
        let Ok(place) = places.clone().try_acquire_owned() else {
            continue;
        };
        let (inspector, replay) = (inspector.clone(), replay.clone());
        let service = service_fn(move |request: Request<Incoming>| {
            let answered = api::answer(request, inspector.clone(), replay.clone());
            async move { Ok::<_, Infallible>(answered.await) }
        });
        tokio::spawn(async move {
            let connection = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(HEAD_TIMEOUT)
                .serve_connection(TokioIo::new(tcp), service);
            if let Err(error) = bounded(connection).await {
                tracing::debug!(%error, "inspector connection failed");
            }
            drop(place);
        });
    }
}

/// `connection`, for [`LIFETIME`] at most, then closed after the request
/// in flight ([`CLOSING`] at most): a client that stops reading gives its
/// place back, and the page's next poll opens a new connection.
async fn bounded<S>(
    connection: hyper::server::conn::http1::Connection<TokioIo<tokio::net::TcpStream>, S>,
) -> hyper::Result<()>
where
    S: hyper::service::HttpService<Incoming, ResBody = RelayBody>,
{
    tokio::pin!(connection);
    match tokio::time::timeout(LIFETIME, connection.as_mut()).await {
        Ok(served) => served,
        Err(_) => {
            connection.as_mut().graceful_shutdown();
            (tokio::time::timeout(CLOSING, connection).await).unwrap_or(Ok(()))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_loopback_is_allowed_without_the_opt_in() {
        let table: &[(&str, bool, bool)] = &[
            ("127.0.0.1:4040", false, true),
            ("127.0.0.2:0", false, true),
            ("[::1]:4040", false, true),
            ("0.0.0.0:4040", false, false),
            ("[::]:4040", false, false),
            ("192.0.2.7:4040", false, false),
            ("0.0.0.0:4040", true, true),
            ("192.0.2.7:4040", true, true),
        ];
        for &(addr, public, allowed) in table {
            let checked = check_address(addr.parse().unwrap(), public);
            assert_eq!(checked.is_ok(), allowed, "{addr} public={public}");
            if let Err(sentence) = checked {
                assert!(sentence.contains("--inspect-public"), "{sentence}");
            }
        }
    }
}
