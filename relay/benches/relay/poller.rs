//! A long-poll client in Rust, as a program with only an HTTP client would
//! serve a name: register, then `polls` loops that each poll, answer with
//! the small body, and follow `Link: rel="next"`.

use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use ptth::longpoll::message;
use ptth_relay::token::random_token;
use tokio::task::JoinSet;

use crate::origin::{NAME, SMALL};

type Http = Client<HttpConnector, Full<Bytes>>;

/// Registers `NAME` on the relay at `addr` and serves it with `polls`
/// parked polls; dropping the set stops them.
pub async fn serve(addr: SocketAddr, polls: usize) -> JoinSet<()> {
    // Under the relay's 30 s bound on an idle connection's next head, so
    // the client never sends on a connection the relay is closing.
    let http: Http = Client::builder(TokioExecutor::new())
        .pool_idle_timeout(Duration::from_secs(20))
        .build_http();
    let registration = Request::post(format!("http://{addr}/reversehttp"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(Full::new(Bytes::from(format!("name={NAME}&token=bench"))))
        .unwrap();
    let registered = http.request(registration).await.unwrap();
    assert!(
        registered.status().is_success(),
        "{:?}",
        registered.status()
    );
    let private = registered.headers()["location"]
        .to_str()
        .unwrap()
        .to_owned();
    let mut loops = JoinSet::new();
    for _ in 0..polls {
        let (http, first) = (http.clone(), format!("{private}/{}", random_token()));
        loops.spawn(run(http, first));
    }
    loops
}

async fn run(http: Http, mut url: String) {
    let small = Response::new(Bytes::from(vec![b'x'; SMALL]));
    let answer = Bytes::from(message::encode_response(&small));
    loop {
        let poll = Request::get(&url)
            .header("accept", "message/http")
            .body(Full::default())
            .unwrap();
        let polled = match http.request(poll).await {
            Ok(polled) => polled,
            Err(error) => {
                eprintln!("long-poll client: poll failed: {error}");
                // A client's pause before it polls again, as ptth.js backs off.
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let next = next_link(polled.headers()).unwrap_or_else(|| url.clone());
        let delivered = polled.status() == 200;
        let Ok(body) = polled.into_body().collect().await else {
            continue;
        };
        if delivered {
            message::parse_request(&body.to_bytes()).expect("a message/http request");
            let reply = Request::post(&url)
                .header("content-type", "message/http")
                .body(Full::new(answer.clone()))
                .unwrap();
            match http.request(reply).await {
                Ok(accepted) => {
                    // 404 is a reply no one waits for: wrk hung up at the
                    // end of a run.
                    let status = accepted.status();
                    if status != 202 && status != 404 {
                        eprintln!("long-poll client: reply answered {status}");
                    }
                    // Read to the end, so the connection goes back to the pool.
                    let _ = accepted.into_body().collect().await;
                }
                Err(error) => eprintln!("long-poll client: reply failed: {error}"),
            }
        }
        url = next;
    }
}

fn next_link(headers: &http::HeaderMap) -> Option<String> {
    headers
        .get_all("link")
        .iter()
        .filter_map(|link| link.to_str().ok())
        .find(|link| link.contains("rel=\"next\""))
        .and_then(|link| link.split('<').nth(1)?.split('>').next())
        .map(str::to_owned)
}
