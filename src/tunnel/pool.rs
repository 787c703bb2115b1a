//! The supervisor: keeps the wanted number of connections open, one dial at
//! a time, and decides when to dial again.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use http::Uri;
use tokio::sync::watch;
use tokio::task::JoinSet;
use tokio::time::Instant;
use tracing::{debug, info, warn};

use super::answer::{self, Verdict};
use super::backoff::Backoff;
use super::link::Link;
use super::watched::{Activity, Watched};
use super::{Config, Phase, Shared};
use crate::initiator::Transposed;
use crate::{Error, Protocol, Setup};

/// A connection just upgraded, with what the tunnel tracks about it.
pub(super) struct Dialed {
    pub(super) transposed: Transposed<Watched<Link>>,
    pub(super) activity: Arc<Activity>,
    pub(super) peer: SocketAddr,
}

/// Serves one dialed connection until it ends; the receiver turns `true`
/// when the tunnel stops.
pub(super) type Runner = Box<
    dyn Fn(Dialed, watch::Receiver<bool>) -> Pin<Box<dyn Future<Output = Result<(), Error>> + Send>>
        + Send
        + Sync,
>;

/// How a connection ended.
struct Ended {
    lived: Duration,
    served: u64,
    idled_out: bool,
    result: Result<(), Error>,
}

type Dialing = Pin<Box<dyn Future<Output = (Result<Dialed, Error>, Uri)> + Send>>;

/// Runs the tunnel until it is stopped or meets an error retrying cannot
/// fix.
pub(super) async fn supervise(
    config: Arc<Config>,
    shared: Arc<Shared>,
    runner: Runner,
) -> Result<(), Error> {
    let runner = Arc::new(runner);
    let mut stop = shared.stop.subscribe();
    // Each dial takes the next URL in turn: connections spread over the
    // relay's nodes, and a node that fails passes its dial to the next.
    let mut urls = config.urls.clone();
    let mut turn = 0;
    let mut index = 0;
    let mut backoff = Backoff::new(config.backoff_base, config.backoff_cap);
    let mut slots: JoinSet<Ended> = JoinSet::new();
    let mut wanted = config.connections.unwrap_or(urls.len());
    let mut delay = Duration::ZERO;
    let mut dialing: Option<Dialing> = None;
    let outcome = loop {
        if dialing.is_none() && slots.len() < wanted {
            index = turn % urls.len();
            turn += 1;
            dialing = Some(Box::pin(dial_after(
                delay,
                config.clone(),
                shared.clone(),
                urls[index].clone(),
            )));
        }
        tokio::select! {
            _ = stop.wait_for(|stop| *stop) => break Ok(()),
            Some(joined) = slots.join_next(), if !slots.is_empty() => {
                let ended = joined.unwrap_or_else(panicked);
                shared.update(|s| s.connected = slots.len());
                delay = replace_after(&ended, config.healthy_after, &mut backoff);
                log_end(&ended, Some(delay));
                if let Err(error) = ended.result {
                    shared.update(|s| s.last_error = Some(error));
                }
            }
            (dialed, now) = async { dialing.as_mut().expect("checked by the guard").await },
                if dialing.is_some() =>
            {
                dialing = None;
                urls[index] = now;
                match dialed {
                    Ok(dialed) => {
                        wanted = start(&config, &shared, &runner, &mut slots, dialed, urls.len());
                        delay = Duration::ZERO;
                    }
                    Err(error) => {
                        let url = &urls[index];
                        let at_least = match answer::judge(&error, url, config.retry_not_found) {
                            Verdict::Retry { at_least } => at_least,
                            _ => break Err(error),
                        };
                        if config.max_failures.is_some_and(|max| backoff.failures() >= max) {
                            break Err(error);
                        }
                        delay = backoff.next_delay().max(at_least.unwrap_or_default());
                        warn!(error = &error as &dyn std::error::Error, ?delay, "tunnel could not connect; retrying");
                        shared.update(|s| s.last_error = Some(error));
                    }
                }
            }
        }
    };
    drop(dialing);
    wind_down(&shared, slots, &outcome).await;
    outcome
}

/// Serves a new connection in `slots`; returns how many connections the
/// tunnel now wants, which depends on the protocol the relay chose.
fn start(
    config: &Config,
    shared: &Shared,
    runner: &Arc<Runner>,
    slots: &mut JoinSet<Ended>,
    dialed: Dialed,
    urls: usize,
) -> usize {
    let protocol = dialed.transposed.protocol();
    let wanted = config.connections.unwrap_or(match protocol {
        Protocol::Http2 => urls,
        Protocol::Http1 => super::DEFAULT_HTTP1_CONNECTIONS.max(urls),
    });
    let public_url = answer::public_url(dialed.transposed.headers());
    info!(relay = %dialed.peer, %protocol, "tunnel connected");
    slots.spawn(run(runner.clone(), dialed, shared.stop.subscribe()));
    shared.update(|s| {
        s.connected = slots.len();
        s.protocol = Some(protocol);
        if public_url.is_some() {
            s.public_url = public_url;
        }
    });
    wanted
}

/// A connection task that panicked, as a connection that ended at once.
fn panicked(panic: tokio::task::JoinError) -> Ended {
    Ended {
        lived: Duration::ZERO,
        served: 0,
        idled_out: false,
        result: Err(Error::from(std::io::Error::other(panic))),
    }
}

/// Stops the connections, waits for each to close, and records how the
/// tunnel ended.
async fn wind_down(shared: &Shared, mut slots: JoinSet<Ended>, outcome: &Result<(), Error>) {
    shared.update(|s| s.phase = Phase::Stopping);
    shared.stop.send_replace(true);
    match outcome {
        Ok(()) => info!(connections = slots.len(), "tunnel shutting down"),
        Err(error) => {
            warn!(error = error as &dyn std::error::Error, "tunnel giving up");
            shared.update(|s| s.last_error = Some(error.clone()));
        }
    }
    while let Some(joined) = slots.join_next().await {
        shared.update(|s| s.connected = slots.len());
        if let Ok(ended) = joined {
            log_end(&ended, None);
        }
    }
    let phase = match outcome {
        Ok(()) => Phase::Stopped,
        Err(_) => Phase::Failed,
    };
    shared.update(|s| s.phase = phase);
    info!("tunnel stopped");
}

/// How long to wait before replacing a connection that ended. One retired
/// for quiet is replaced at once; any other resets the backoff only if it
/// proved healthy, so a relay that drops every connection at once is
/// met with growing waits.
fn replace_after(ended: &Ended, healthy_after: Duration, backoff: &mut Backoff) -> Duration {
    if ended.idled_out {
        backoff.reset();
        return Duration::ZERO;
    }
    if ended.lived >= healthy_after || ended.served > 0 {
        backoff.reset();
    }
    backoff.next_delay()
}

async fn run(runner: Arc<Runner>, dialed: Dialed, stop: watch::Receiver<bool>) -> Ended {
    let started = Instant::now();
    let activity = dialed.activity.clone();
    let result = runner(dialed, stop).await;
    Ended {
        lived: started.elapsed(),
        served: activity.served(),
        idled_out: activity.idled_out(),
        result,
    }
}

/// Reports a connection's end: `delay` is when it will be replaced, `None`
/// while the tunnel stops.
fn log_end(ended: &Ended, delay: Option<Duration>) {
    let lived = ended.lived;
    match (&ended.result, delay) {
        (Ok(()), None) => info!(?lived, "tunnel connection drained"),
        (Err(error), None) => info!(
            ?lived,
            error = error as &dyn std::error::Error,
            "tunnel connection ended while stopping"
        ),
        (Err(_), Some(_)) if ended.idled_out => {
            debug!(?lived, "tunnel connection quiet for too long; replacing it")
        }
        (Ok(()), Some(delay)) => {
            info!(
                ?lived,
                ?delay,
                "tunnel connection closed by the relay; replacing it"
            )
        }
        (Err(error), Some(delay)) => {
            info!(
                ?lived,
                error = error as &dyn std::error::Error,
                ?delay,
                "tunnel connection lost; replacing it"
            )
        }
    }
}

/// Waits `delay`, then dials, following redirects. Returns the URL to dial
/// next time: the same, or where a permanent redirect pointed.
async fn dial_after(
    delay: Duration,
    config: Arc<Config>,
    shared: Arc<Shared>,
    mut url: Uri,
) -> (Result<Dialed, Error>, Uri) {
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
    let mut target = url.clone();
    let mut redirects = 0;
    loop {
        shared.update(|s| s.attempts += 1);
        let error = match dial(&config, &target).await {
            Ok(dialed) => return (Ok(dialed), url),
            Err(error) => error,
        };
        let Verdict::Redirect { to, permanent } = answer::judge(&error, &target, false) else {
            return (Err(error), url);
        };
        redirects += 1;
        if redirects > config.max_redirects {
            let error = Error::TooManyRedirects {
                limit: config.max_redirects,
                last: to.to_string(),
            };
            return (Err(error), url);
        }
        debug!(to = %to, permanent, "tunnel following a redirect");
        if permanent && target == url {
            url = to.clone();
        }
        target = to;
    }
}

async fn dial(config: &Config, url: &Uri) -> Result<Dialed, Error> {
    let (transposed, peer) = match config.setup {
        Setup::Http2 => config.sessions.open(&config.initiator, url).await?,
        _ => {
            let transposed = config.initiator.connect(url).await?;
            let peer = transposed.io().tcp_stream().peer_addr()?;
            (transposed.map_io(Link::Stream), peer)
        }
    };
    let activity = Activity::new();
    let idle = match transposed.protocol() {
        Protocol::Http1 => Some(config.idle_timeout),
        Protocol::Http2 => config.listener_idle.then_some(config.idle_timeout),
    };
    let transposed = transposed.map_io(|io| Watched::new(io, activity.clone(), idle));
    Ok(Dialed {
        transposed,
        activity,
        peer,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const BASE: Duration = Duration::from_millis(500);
    const HEALTHY: Duration = Duration::from_secs(10);

    fn ended(lived: u64, served: u64, idled_out: bool) -> Ended {
        Ended {
            lived: Duration::from_secs(lived),
            served,
            idled_out,
            result: Err(Error::Closed),
        }
    }

    fn after(ended: &Ended, backoff: &mut Backoff) -> Duration {
        replace_after(ended, HEALTHY, backoff)
    }

    #[test]
    fn connections_dropped_at_once_meet_growing_waits() {
        let mut backoff = Backoff::new(BASE, Duration::from_secs(30));
        for _ in 0..4 {
            after(&ended(1, 0, false), &mut backoff);
        }
        assert_eq!(backoff.bound(), BASE * 16);
    }

    #[test]
    fn a_healthy_connection_starts_the_waits_again() {
        for healthy in [ended(10, 0, false), ended(1, 1, false)] {
            let mut backoff = Backoff::new(BASE, Duration::from_secs(30));
            for _ in 0..4 {
                backoff.next_delay();
            }
            assert!(after(&healthy, &mut backoff) < BASE);
            assert_eq!(backoff.failures(), 1);
        }
    }

    #[test]
    fn a_connection_retired_for_quiet_is_replaced_at_once() {
        let mut backoff = Backoff::new(BASE, Duration::from_secs(30));
        backoff.next_delay();
        assert_eq!(after(&ended(40, 0, true), &mut backoff), Duration::ZERO);
        assert_eq!(backoff.failures(), 0);
    }
}
