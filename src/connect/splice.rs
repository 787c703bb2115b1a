//! Bytes copied both ways between two streams, with half-close, an idle
//! limit and live counts (`docs/protocol.md, "TCP over PTTH: CONNECT"`).

use std::fmt;
use std::future::{Future, poll_fn};
use std::io;
use std::pin::{Pin, pin};
use std::sync::Arc;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::{Instant, Sleep};

/// The buffer each direction copies through.
const DEFAULT_BUFFER: usize = 32 * 1024;

/// The buffer a direction starts with: most tunnels (ssh keystrokes, a
/// request and its answer) never fill it, and a visitor's start then
/// zeroes 8 KiB a direction instead of the whole buffer.
const FIRST_BUFFER: usize = 8 * 1024;

/// The largest buffer [`Splice::buffer_size`] accepts: past this a
/// buffer costs memory per tunnel without moving bytes faster.
const MAX_BUFFER: usize = 1024 * 1024;

/// How many buffers a direction moves in one poll before it lets the
/// task's other work run: a stream that always has bytes ready would
/// otherwise hold the thread.
const CHUNKS_PER_POLL: usize = 16;

/// One way bytes go through a [`Splice`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Direction {
    /// Read from the first stream given to [`Splice::run`], written to the
    /// second.
    AToB,
    /// Read from the second stream, written to the first.
    BToA,
}

/// Told of bytes as they are written on.
type OnBytes = Arc<dyn Fn(Direction, u64) + Send + Sync>;

/// Copies bytes both ways between two streams until both ends are done,
/// nothing moves for the idle limit, or one fails.
///
/// Each direction is copied on its own: when one side ends its writing
/// (a read returns end of file), the other side's write half is shut down
/// (TCP `FIN`, HTTP/2 `END_STREAM`) and the other direction goes on until
/// it ends too. This is what `tokio::io::copy_bidirectional` does; a
/// splice adds an idle limit and counts told as bytes pass, so a tunnel's
/// metrics move while a long session lasts.
///
/// Each direction copies through a buffer of its own, of
/// [`buffer_size`](Splice::buffer_size) bytes, so a splice holds at most
/// twice that.
#[derive(Clone)]
#[must_use = "a splice does nothing until it is run"]
pub struct Splice {
    idle_timeout: Option<Duration>,
    buffer_size: usize,
    on_bytes: Option<OnBytes>,
}

impl Default for Splice {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Debug for Splice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Splice")
            .field("idle_timeout", &self.idle_timeout)
            .field("buffer_size", &self.buffer_size)
            .field("on_bytes", &self.on_bytes.is_some())
            .finish()
    }
}

impl Splice {
    /// A splice with the defaults each setter names.
    pub fn new() -> Self {
        Splice {
            idle_timeout: None,
            buffer_size: DEFAULT_BUFFER,
            on_bytes: None,
        }
    }

    /// Ends the splice, closing both streams, once no byte has moved either
    /// way for `timeout`. Requires a tokio runtime with the time driver.
    ///
    /// Default is none: a quiet splice waits as long as a quiet TCP
    /// connection does.
    pub fn idle_timeout(mut self, timeout: Duration) -> Self {
        self.idle_timeout = Some(timeout);
        self
    }

    /// The buffer each direction copies through, in bytes, between 1 and
    /// 1 MiB (other values are brought into that range). A direction
    /// starts with 8 KiB (or less, when this is less) and grows to this
    /// size the first time a read fills what it has.
    ///
    /// Default is 32 KiB.
    pub fn buffer_size(mut self, bytes: usize) -> Self {
        self.buffer_size = bytes.clamp(1, MAX_BUFFER);
        self
    }

    /// Calls `hook` with the direction and the count each time bytes have
    /// been written on, from the task that runs the splice: keep it short
    /// (add to a counter).
    ///
    /// Default is none.
    pub fn on_bytes(mut self, hook: impl Fn(Direction, u64) + Send + Sync + 'static) -> Self {
        self.on_bytes = Some(Arc::new(hook));
        self
    }

    /// Copies between `a` and `b` until the splice ends, then drops both,
    /// which closes them. Pass `&mut stream` to keep a stream.
    pub async fn run<A, B>(self, mut a: A, mut b: B) -> Spliced
    where
        A: AsyncRead + AsyncWrite + Unpin,
        B: AsyncRead + AsyncWrite + Unpin,
    {
        // Each half owns its hook: closures borrowing one across the await
        // would make the future's `Send` depend on a borrow's lifetime,
        // which callers that spawn it cannot prove.
        let mut a_to_b = Half::new(self.buffer_size, Direction::AToB, self.on_bytes.clone());
        let mut b_to_a = Half::new(self.buffer_size, Direction::BToA, self.on_bytes.clone());
        let mut idle = self.idle_timeout.map(Idle::new);
        let mut timer = pin!(tokio::time::sleep(self.idle_timeout.unwrap_or_default()));
        let ended = poll_fn(|cx| {
            let mut moved = false;
            let directions = [
                (
                    a_to_b.direction,
                    a_to_b.poll_copy(cx, &mut a, &mut b, &mut moved),
                ),
                (
                    b_to_a.direction,
                    b_to_a.poll_copy(cx, &mut b, &mut a, &mut moved),
                ),
            ];
            for (direction, copied) in directions {
                if let Poll::Ready(Err(error)) = copied {
                    return Poll::Ready(Ended::Failed { direction, error });
                }
            }
            if a_to_b.done && b_to_a.done {
                return Poll::Ready(Ended::Closed);
            }
            let Some(idle) = &mut idle else {
                return Poll::Pending;
            };
            if idle.expired(cx, timer.as_mut(), moved) {
                Poll::Ready(Ended::Idle(idle.limit))
            } else {
                Poll::Pending
            }
        })
        .await;
        Spliced {
            a_to_b: a_to_b.moved,
            b_to_a: b_to_a.moved,
            ended,
        }
    }
}

/// How a splice went: the bytes written on each way, and why it ended.
#[derive(Debug)]
#[non_exhaustive]
pub struct Spliced {
    /// Bytes read from the first stream and written to the second.
    pub a_to_b: u64,
    /// Bytes read from the second stream and written to the first.
    pub b_to_a: u64,
    /// Why it ended.
    pub ended: Ended,
}

/// Why a [`Splice`] ended.
#[derive(Debug)]
#[non_exhaustive]
pub enum Ended {
    /// Both ways reached end of file, and each was passed on as a shutdown.
    Closed,
    /// No byte moved either way for the idle limit, which it carries.
    Idle(Duration),
    /// Reading, writing or shutting down failed one way.
    Failed {
        /// The way that failed.
        direction: Direction,
        /// What failed.
        error: io::Error,
    },
}

/// One direction's copy: the buffer, what of it is still to be written,
/// and whether end of file was passed on.
struct Half {
    buf: Box<[u8]>,
    /// The size `buf` grows to once a read fills it.
    max: usize,
    start: usize,
    end: usize,
    eof: bool,
    /// Written since the last flush: a writer that buffers (TLS) must
    /// flush before this side waits for more to read.
    unflushed: bool,
    done: bool,
    moved: u64,
    direction: Direction,
    on_bytes: Option<OnBytes>,
}

impl Half {
    fn new(size: usize, direction: Direction, on_bytes: Option<OnBytes>) -> Self {
        Half {
            direction,
            on_bytes,
            buf: vec![0; size.min(FIRST_BUFFER)].into_boxed_slice(),
            max: size,
            start: 0,
            end: 0,
            eof: false,
            unflushed: false,
            done: false,
            moved: 0,
        }
    }

    /// Copies from `from` to `to` until one of them must wait; ready once
    /// end of file has been passed on as a shutdown, or on an error. Sets
    /// `moved` when a byte was read or written.
    fn poll_copy<R, W>(
        &mut self,
        cx: &mut Context<'_>,
        from: &mut R,
        to: &mut W,
        moved: &mut bool,
    ) -> Poll<io::Result<()>>
    where
        R: AsyncRead + Unpin,
        W: AsyncWrite + Unpin,
    {
        if self.done {
            return Poll::Ready(Ok(()));
        }
        for _ in 0..CHUNKS_PER_POLL {
            if self.start == self.end && !self.eof {
                if self.end == self.buf.len() && self.buf.len() < self.max {
                    // The last read filled the buffer: bytes come in bulk.
                    self.buf = vec![0; self.max].into_boxed_slice();
                }
                let mut read = ReadBuf::new(&mut self.buf);
                if let Poll::Ready(result) = Pin::new(&mut *from).poll_read(cx, &mut read) {
                    result?;
                } else {
                    if self.unflushed {
                        ready!(Pin::new(&mut *to).poll_flush(cx))?;
                        self.unflushed = false;
                    }
                    return Poll::Pending;
                }
                let filled = read.filled().len();
                (self.start, self.end, self.eof) = (0, filled, filled == 0);
                *moved |= filled > 0;
            }
            while self.start < self.end {
                let buf = &self.buf[self.start..self.end];
                let written = ready!(Pin::new(&mut *to).poll_write(cx, buf))?;
                if written == 0 {
                    return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
                }
                self.start += written;
                self.moved += written as u64;
                self.unflushed = true;
                *moved = true;
                if let Some(hook) = &self.on_bytes {
                    hook(self.direction, written as u64);
                }
            }
            if self.eof {
                // One side is done writing; the other may still have a lot
                // to say, so only this direction ends (a half-close).
                ready!(Pin::new(&mut *to).poll_shutdown(cx))?;
                self.done = true;
                return Poll::Ready(Ok(()));
            }
        }
        cx.waker().wake_by_ref();
        Poll::Pending
    }
}

/// The idle limit: when a byte last moved, checked when the timer fires
/// rather than reset on every byte.
struct Idle {
    limit: Duration,
    last: Instant,
}

impl Idle {
    fn new(limit: Duration) -> Self {
        Idle {
            limit,
            last: Instant::now(),
        }
    }

    /// Whether nothing has moved for the limit, arming `timer` for the
    /// next check when something has.
    fn expired(&mut self, cx: &mut Context<'_>, mut timer: Pin<&mut Sleep>, moved: bool) -> bool {
        if moved {
            self.last = Instant::now();
        }
        loop {
            if timer.as_mut().poll(cx).is_pending() {
                return false;
            }
            let due = self.last + self.limit;
            if Instant::now() >= due {
                return true;
            }
            timer.as_mut().reset(due);
        }
    }
}

#[cfg(test)]
mod tests;
