//! Liveness of a connection seen from its bytes: an IO that notes when
//! bytes last moved and fails its reads once nothing has moved for too
//! long while no request is being handled.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::task::{Context, Poll, ready};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::{Instant, Sleep};

/// What the tunnel knows about one connection's traffic, shared between
/// its IO, its service and the task that drives it.
#[derive(Debug)]
pub(super) struct Activity {
    start: Instant,
    /// Milliseconds from `start` to the last byte moved.
    last: AtomicU64,
    in_flight: AtomicUsize,
    served: AtomicU64,
    idled_out: AtomicBool,
    /// A request took the connection over (an HTTP/1.1 CONNECT or
    /// upgrade): its bytes are no longer HTTP, so no idle limit applies.
    handed_over: AtomicBool,
}

impl Activity {
    pub(super) fn new() -> Arc<Self> {
        Arc::new(Activity {
            start: Instant::now(),
            last: AtomicU64::new(0),
            in_flight: AtomicUsize::new(0),
            served: AtomicU64::new(0),
            idled_out: AtomicBool::new(false),
            handed_over: AtomicBool::new(false),
        })
    }

    fn touch(&self) {
        let now = self.start.elapsed().as_millis();
        self.last
            .store(u64::try_from(now).unwrap_or(u64::MAX), Ordering::Relaxed);
    }

    fn quiet_since(&self) -> Instant {
        self.start + Duration::from_millis(self.last.load(Ordering::Relaxed))
    }

    /// A request started; the guard marks its end when dropped.
    pub(super) fn request(self: &Arc<Self>) -> InFlight {
        self.in_flight.fetch_add(1, Ordering::Relaxed);
        self.served.fetch_add(1, Ordering::Relaxed);
        InFlight(self.clone())
    }

    /// Requests taken so far.
    pub(super) fn served(&self) -> u64 {
        self.served.load(Ordering::Relaxed)
    }

    /// Whether the connection ended because it sat idle.
    pub(super) fn idled_out(&self) -> bool {
        self.idled_out.load(Ordering::Relaxed)
    }
}

/// Marks one request as handled when dropped.
#[derive(Debug)]
pub(super) struct InFlight(Arc<Activity>);

impl InFlight {
    /// The request took the connection over for the rest of its life.
    pub(super) fn hand_over(&self) {
        self.0.handed_over.store(true, Ordering::Relaxed);
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

/// An IO that reports its traffic to an [`Activity`] and, with an idle
/// limit, ends reads with `TimedOut` once no byte has moved for that long
/// while no request is in flight.
///
/// HTTP servers keep a read pending on an idle connection, so that read is
/// where the limit is enforced.
#[derive(Debug)]
pub(super) struct Watched<T> {
    inner: T,
    activity: Arc<Activity>,
    idle: Option<Duration>,
    timer: Pin<Box<Sleep>>,
}

impl<T> Watched<T> {
    pub(super) fn new(inner: T, activity: Arc<Activity>, idle: Option<Duration>) -> Self {
        activity.touch();
        let deadline = Instant::now() + idle.unwrap_or(Duration::ZERO);
        Watched {
            inner,
            activity,
            idle,
            timer: Box::pin(tokio::time::sleep_until(deadline)),
        }
    }

    #[cfg(feature = "axum")]
    pub(super) fn get_ref(&self) -> &T {
        &self.inner
    }

    /// Whether the idle limit has passed, arming the timer for the next
    /// check when it has not.
    fn idle_expired(&mut self, cx: &mut Context<'_>, idle: Duration) -> bool {
        loop {
            if self.timer.as_mut().poll(cx).is_pending() {
                return false;
            }
            let busy = self.activity.in_flight.load(Ordering::Relaxed) > 0
                || self.activity.handed_over.load(Ordering::Relaxed);
            let due = self.activity.quiet_since() + idle;
            if !busy && Instant::now() >= due {
                return true;
            }
            let next = if busy { Instant::now() + idle } else { due };
            self.timer.as_mut().reset(next);
        }
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for Watched<T> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let idle = this.idle;
        match Pin::new(&mut this.inner).poll_read(cx, buf) {
            Poll::Ready(result) => {
                if buf.filled().len() > before {
                    this.activity.touch();
                }
                Poll::Ready(result)
            }
            Poll::Pending => match idle {
                Some(idle) if this.idle_expired(cx, idle) => {
                    this.activity.idled_out.store(true, Ordering::Relaxed);
                    Poll::Ready(Err(io::Error::new(
                        io::ErrorKind::TimedOut,
                        format!("no byte moved for {idle:?} with no request in flight"),
                    )))
                }
                _ => Poll::Pending,
            },
        }
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Watched<T> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let written = ready!(Pin::new(&mut this.inner).poll_write(cx, buf))?;
        if written > 0 {
            this.activity.touch();
        }
        Poll::Ready(Ok(written))
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let written = ready!(Pin::new(&mut this.inner).poll_write_vectored(cx, bufs))?;
        if written > 0 {
            this.activity.touch();
        }
        Poll::Ready(Ok(written))
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::*;

    const IDLE: Duration = Duration::from_secs(30);

    #[tokio::test(start_paused = true)]
    async fn a_quiet_connection_fails_its_read_at_the_idle_limit() {
        let (_far, near) = tokio::io::duplex(64);
        let activity = Activity::new();
        let mut io = Watched::new(near, activity.clone(), Some(IDLE));
        let start = Instant::now();
        let error = io.read(&mut [0; 8]).await.unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::TimedOut);
        assert_eq!(start.elapsed(), IDLE);
        assert!(activity.idled_out());
    }

    #[tokio::test(start_paused = true)]
    async fn bytes_either_way_push_the_limit_back() {
        let (mut far, near) = tokio::io::duplex(64);
        let activity = Activity::new();
        let mut io = Watched::new(near, activity.clone(), Some(IDLE));
        let start = Instant::now();
        tokio::time::sleep(IDLE - Duration::from_secs(1)).await;
        io.write_all(b"x").await.unwrap();
        tokio::time::sleep(IDLE - Duration::from_secs(1)).await;
        far.write_all(b"y").await.unwrap();
        assert_eq!(io.read(&mut [0; 8]).await.unwrap(), 1);
        io.read(&mut [0; 8]).await.unwrap_err();
        assert_eq!(start.elapsed(), (IDLE - Duration::from_secs(1)) * 2 + IDLE);
    }

    #[tokio::test(start_paused = true)]
    async fn a_request_in_flight_keeps_a_quiet_connection() {
        let (_far, near) = tokio::io::duplex(64);
        let activity = Activity::new();
        let mut io = Watched::new(near, activity.clone(), Some(IDLE));
        let request = activity.request();
        let start = Instant::now();
        let handler = async {
            tokio::time::sleep(IDLE * 3).await;
            drop(request);
        };
        let mut buf = [0; 8];
        let (read, ()) = tokio::join!(io.read(&mut buf), handler);
        read.unwrap_err();
        assert!(start.elapsed() >= IDLE * 3, "{:?}", start.elapsed());
        assert_eq!(activity.served(), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn a_connection_a_request_took_over_is_never_retired_for_quiet() {
        let (_far, near) = tokio::io::duplex(64);
        let activity = Activity::new();
        let mut io = Watched::new(near, activity.clone(), Some(IDLE));
        activity.request().hand_over();
        let read = tokio::time::timeout(IDLE * 10, io.read(&mut [0; 8])).await;
        assert!(read.is_err(), "the read ended: {read:?}");
    }

    #[tokio::test(start_paused = true)]
    async fn without_a_limit_a_quiet_read_waits() {
        let (_far, near) = tokio::io::duplex(64);
        let mut io = Watched::new(near, Activity::new(), None);
        let read = tokio::time::timeout(IDLE * 10, io.read(&mut [0; 8])).await;
        assert!(read.is_err(), "the read ended: {read:?}");
    }
}
