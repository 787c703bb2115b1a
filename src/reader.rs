//! Bounded reading of heads and bodies before the switch. Every buffer here
//! is held to the caller's limit plus one read; time bounds are applied by
//! the callers around the whole handshake.

use bytes::{Buf, Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt};

use crate::Error;
use crate::head::{self, Framing, Limits, RequestHead, ResponseHead};

/// The first read's size. Upgrade heads are a few hundred bytes; a small
/// first buffer keeps the handshake's short-lived allocations in the
/// allocator's fast bins, which measurably lowers idle memory per
/// connection. Later reads grow the buffer geometrically.
const READ_CHUNK: usize = 1024;
const MAX_CHUNK_LINE: usize = 1024;

/// What to do with a body larger than the limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Excess {
    /// Fail with [`Error::BodyTooLarge`].
    Refuse,
    /// Keep the first `limit` bytes and stop reading.
    Truncate,
}

pub(crate) struct Reader<T> {
    pub(crate) io: T,
    pub(crate) buf: BytesMut,
}

impl<T: AsyncRead + Unpin> Reader<T> {
    pub(crate) fn new(io: T) -> Self {
        Reader {
            io,
            buf: BytesMut::new(),
        }
    }

    async fn read_more(&mut self) -> Result<(), Error> {
        self.buf.reserve(READ_CHUNK.max(self.buf.len()));
        match self.io.read_buf(&mut self.buf).await? {
            0 => Err(Error::Closed),
            _ => Ok(()),
        }
    }

    async fn fill(&mut self, len: usize) -> Result<(), Error> {
        while self.buf.len() < len {
            self.read_more().await?;
        }
        Ok(())
    }

    pub(crate) async fn request_head(&mut self, limits: Limits) -> Result<RequestHead, Error> {
        loop {
            if let Some(head) = head::parse_request(&self.buf, limits)? {
                self.buf.advance(head.len);
                return Ok(head);
            }
            self.read_more().await?;
        }
    }

    pub(crate) async fn response_head(&mut self, limits: Limits) -> Result<ResponseHead, Error> {
        loop {
            if let Some(head) = head::parse_response(&self.buf, limits)? {
                self.buf.advance(head.len);
                return Ok(head);
            }
            self.read_more().await?;
        }
    }

    /// One line, without its LF or CRLF.
    async fn line(&mut self) -> Result<Bytes, Error> {
        loop {
            if let Some(end) = self.buf.iter().position(|&b| b == b'\n') {
                let mut line = self.buf.split_to(end + 1).freeze();
                line.truncate(end);
                if line.ends_with(b"\r") {
                    line.truncate(end - 1);
                }
                return Ok(line);
            }
            if self.buf.len() > MAX_CHUNK_LINE {
                return Err(Error::Malformed("chunk line too long"));
            }
            self.read_more().await?;
        }
    }

    pub(crate) async fn body(
        &mut self,
        framing: Framing,
        limit: usize,
        excess: Excess,
    ) -> Result<Bytes, Error> {
        let too_large = || Error::BodyTooLarge { limit };
        match framing {
            Framing::Empty => Ok(Bytes::new()),
            Framing::Length(len) => {
                let len = match usize::try_from(len) {
                    Ok(len) if len <= limit => len,
                    _ if excess == Excess::Truncate => limit,
                    _ => return Err(too_large()),
                };
                self.fill(len).await?;
                Ok(self.buf.split_to(len).freeze())
            }
            Framing::Chunked => {
                let mut body = BytesMut::new();
                loop {
                    let size = head::chunk_size(&self.line().await?)?;
                    if size == 0 {
                        break;
                    }
                    let room = limit - body.len();
                    let take = match usize::try_from(size) {
                        Ok(size) if size <= room => size,
                        _ if excess == Excess::Truncate => {
                            self.fill(room).await?;
                            body.extend_from_slice(&self.buf.split_to(room));
                            return Ok(body.freeze());
                        }
                        _ => return Err(too_large()),
                    };
                    self.fill(take).await?;
                    body.extend_from_slice(&self.buf.split_to(take));
                    if !self.line().await?.is_empty() {
                        return Err(Error::Malformed("chunk data longer than its size"));
                    }
                }
                let mut trailer_bytes = 0;
                loop {
                    let line = self.line().await?;
                    if line.is_empty() {
                        return Ok(body.freeze());
                    }
                    trailer_bytes += line.len();
                    if trailer_bytes > MAX_CHUNK_LINE {
                        return Err(Error::Malformed("chunked trailers too long"));
                    }
                }
            }
            Framing::UntilClose => {
                // Refusing must know whether a byte follows the limit;
                // cutting must not wait for one.
                let enough = match excess {
                    Excess::Truncate => limit,
                    Excess::Refuse => limit.saturating_add(1),
                };
                while self.buf.len() < enough {
                    match self.read_more().await {
                        Ok(()) => {}
                        Err(Error::Closed) => break,
                        Err(e) => return Err(e),
                    }
                }
                if self.buf.len() > limit && excess == Excess::Refuse {
                    return Err(too_large());
                }
                let len = self.buf.len().min(limit);
                Ok(self.buf.split_to(len).freeze())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncWriteExt;

    async fn read_body(
        input: &'static [u8],
        framing: Framing,
        limit: usize,
        excess: Excess,
    ) -> (Result<Bytes, Error>, Bytes) {
        let (mut far, near) = tokio::io::duplex(1 << 16);
        far.write_all(input).await.unwrap();
        drop(far);
        let mut reader = Reader::new(near);
        let body = reader.body(framing, limit, excess).await;
        (body, reader.buf.freeze())
    }

    #[tokio::test]
    async fn chunked_body_is_decoded_and_rest_is_kept() {
        let (body, rest) = read_body(
            b"4\r\nWiki\r\n5;x=y\npedia\n0\r\nTrailer: t\r\n\r\nNEXT",
            Framing::Chunked,
            64,
            Excess::Refuse,
        )
        .await;
        assert_eq!(body.unwrap(), "Wikipedia");
        assert_eq!(rest, "NEXT");
    }

    #[tokio::test]
    async fn chunked_body_over_the_limit_is_refused_or_cut() {
        let input = b"4\r\nWiki\r\n5\r\npedia\r\n0\r\n\r\n";
        let (body, _) = read_body(input, Framing::Chunked, 6, Excess::Refuse).await;
        assert!(matches!(body, Err(Error::BodyTooLarge { limit: 6 })));
        let (body, _) = read_body(input, Framing::Chunked, 6, Excess::Truncate).await;
        assert_eq!(body.unwrap(), "Wikipe");
    }

    #[tokio::test]
    async fn chunk_longer_than_its_size_is_malformed() {
        let (body, _) = read_body(
            b"2\r\nabc\r\n0\r\n\r\n",
            Framing::Chunked,
            64,
            Excess::Refuse,
        )
        .await;
        assert!(matches!(body, Err(Error::Malformed(_))));
    }

    #[tokio::test]
    async fn length_body_and_early_close() {
        let (body, rest) = read_body(b"abcdef", Framing::Length(4), 64, Excess::Refuse).await;
        assert_eq!(body.unwrap(), "abcd");
        assert_eq!(rest, "ef");
        let (body, _) = read_body(b"ab", Framing::Length(4), 64, Excess::Refuse).await;
        assert!(matches!(body, Err(Error::Closed)));
        let (body, _) = read_body(b"abcdef", Framing::Length(6), 3, Excess::Refuse).await;
        assert!(matches!(body, Err(Error::BodyTooLarge { limit: 3 })));
        let (body, _) = read_body(b"abcdef", Framing::Length(6), 3, Excess::Truncate).await;
        assert_eq!(body.unwrap(), "abc");
    }

    #[tokio::test]
    async fn body_until_close_is_bounded() {
        let (body, _) = read_body(b"abcdef", Framing::UntilClose, 64, Excess::Truncate).await;
        assert_eq!(body.unwrap(), "abcdef");
        let (body, _) = read_body(b"abcdef", Framing::UntilClose, 4, Excess::Truncate).await;
        assert_eq!(body.unwrap(), "abcd");
        let (body, _) = read_body(b"abcdef", Framing::UntilClose, 4, Excess::Refuse).await;
        assert!(matches!(body, Err(Error::BodyTooLarge { limit: 4 })));
        // Exactly at the limit is within it.
        let (body, _) = read_body(b"abcdef", Framing::UntilClose, 6, Excess::Refuse).await;
        assert_eq!(body.unwrap(), "abcdef");
    }

    /// Bytes in the reads given, then the end.
    struct Reads(std::collections::VecDeque<&'static [u8]>);

    impl tokio::io::AsyncRead for Reads {
        fn poll_read(
            mut self: std::pin::Pin<&mut Self>,
            _: &mut std::task::Context<'_>,
            buf: &mut tokio::io::ReadBuf<'_>,
        ) -> std::task::Poll<std::io::Result<()>> {
            if let Some(read) = self.0.pop_front() {
                buf.put_slice(read);
            }
            std::task::Poll::Ready(Ok(()))
        }
    }

    // A first read that ends exactly at the limit was taken as the whole
    // body (proptest found it: `proptest-regressions/reader.txt`).
    #[tokio::test]
    async fn a_body_until_close_one_byte_past_a_read_at_the_limit_is_refused() {
        let mut reader = Reader::new(Reads([&b"abcd"[..], b"e"].into()));
        let body = reader.body(Framing::UntilClose, 4, Excess::Refuse).await;
        assert!(
            matches!(body, Err(Error::BodyTooLarge { limit: 4 })),
            "{body:?}"
        );
        let mut reader = Reader::new(Reads([&b"abcd"[..]].into()));
        let body = reader.body(Framing::UntilClose, 4, Excess::Refuse).await;
        assert_eq!(body.unwrap(), "abcd");
    }

    /// A body cut at its limit needs no read past the limit: the peer may
    /// keep the connection open and send nothing more.
    #[test]
    fn body_until_close_at_its_limit_needs_no_more_bytes() {
        let body = promptly("reading a body cut at its limit", || async {
            let (mut far, near) = tokio::io::duplex(1 << 16);
            far.write_all(b"abcd").await.unwrap();
            let mut reader = Reader::new(near);
            let body = reader.body(Framing::UntilClose, 4, Excess::Truncate).await;
            drop(far);
            body
        });
        assert_eq!(body.unwrap(), "abcd");
    }

    /// Runs `read` on a thread of its own and fails fast, naming `what`, if
    /// it does not finish: a reader that spins or waits for a byte too many
    /// would otherwise hold the test until its watchdog. The thread is left
    /// behind then, so a spinning reader cannot block the test's end.
    fn promptly<F>(what: &str, read: impl FnOnce() -> F + Send + 'static) -> F::Output
    where
        F: std::future::Future,
        F::Output: Send + 'static,
    {
        let (done, result) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .build()
                .unwrap();
            let _ = done.send(runtime.block_on(read()));
        });
        result
            .recv_timeout(std::time::Duration::from_secs(2))
            .unwrap_or_else(|_| panic!("{what} did not finish"))
    }

    #[test]
    fn a_peer_closing_inside_a_head_is_closed() {
        let result = promptly("reading a head cut by a close", || async {
            let (mut far, near) = tokio::io::duplex(1 << 16);
            far.write_all(b"GET / HTTP/1.1\r\nHost:").await.unwrap();
            drop(far);
            let limits = Limits {
                max_head: 16 * 1024,
                max_headers: 64,
            };
            Reader::new(near).request_head(limits).await.map(|_| ())
        });
        assert!(matches!(result, Err(Error::Closed)), "{result:?}");
    }

    /// A body of known length is done at its last byte, while the peer,
    /// which waits for the answer, sends nothing more.
    #[test]
    fn a_length_body_ends_at_its_last_byte() {
        let body = promptly("reading a 4-byte body", || async {
            let (mut far, near) = tokio::io::duplex(1 << 16);
            far.write_all(b"abcd").await.unwrap();
            let mut reader = Reader::new(near);
            let body = reader.body(Framing::Length(4), 64, Excess::Refuse).await;
            drop(far);
            body
        });
        assert_eq!(body.unwrap(), "abcd");
    }

    /// A peer that keeps sending after the limit: reading stops at the
    /// limit plus one read, without waiting for the close.
    #[tokio::test]
    async fn body_until_close_stops_reading_at_the_limit() {
        let (mut far, near) = tokio::io::duplex(1 << 16);
        far.write_all(&[b'z'; 1 << 16]).await.unwrap();
        let mut reader = Reader::new(near);
        let body = reader
            .body(Framing::UntilClose, 4, Excess::Truncate)
            .await
            .unwrap();
        assert_eq!(body, "zzzz");
        let read = body.len() + reader.buf.len();
        assert!(read <= 2 * READ_CHUNK, "{read} bytes read");
        drop(far);
    }

    /// Writes `head`, then `filler` over and over (1 MiB in all) without
    /// waiting for it to be read, and reads a chunked body from it.
    async fn endless_chunked(head: &'static [u8], filler: &'static [u8]) -> (Error, usize) {
        let (mut far, near) = tokio::io::duplex(1 << 16);
        let writer = tokio::spawn(async move {
            let _ = far.write_all(head).await;
            for _ in 0..(1 << 20) / filler.len() {
                if far.write_all(filler).await.is_err() {
                    break;
                }
            }
        });
        let mut reader = Reader::new(near);
        let error = reader
            .body(Framing::Chunked, 1 << 20, Excess::Refuse)
            .await
            .unwrap_err();
        let capacity = reader.buf.capacity();
        drop(reader);
        writer.await.unwrap();
        (error, capacity)
    }

    #[tokio::test]
    async fn an_endless_chunk_size_line_is_refused_near_its_bound() {
        let (error, capacity) = endless_chunked(b"4", b"aaaaaaaa").await;
        assert!(
            matches!(error, Error::Malformed("chunk line too long")),
            "{error:?}"
        );
        assert!(capacity <= 4 * MAX_CHUNK_LINE, "{capacity}");
    }

    #[tokio::test]
    async fn endless_trailers_are_refused_near_their_bound() {
        let (error, capacity) = endless_chunked(b"1\r\na\r\n0\r\n", b"X-T: y\r\n").await;
        assert!(
            matches!(error, Error::Malformed("chunked trailers too long")),
            "{error:?}"
        );
        assert!(capacity <= 4 * MAX_CHUNK_LINE, "{capacity}");
    }

    /// The first read of a handshake reserves a small buffer: heads are a
    /// few hundred bytes, and idle memory per connection depends on it.
    #[tokio::test]
    async fn a_small_head_is_read_into_a_small_buffer() {
        let (mut far, near) = tokio::io::duplex(1 << 16);
        far.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
            .unwrap();
        let mut reader = Reader::new(near);
        let limits = Limits {
            max_head: 16 * 1024,
            max_headers: 64,
        };
        reader.request_head(limits).await.unwrap();
        // A literal, not READ_CHUNK: raising the constant must fail here.
        assert!(reader.buf.capacity() <= 1024, "{}", reader.buf.capacity());
    }

    #[tokio::test]
    async fn a_megabyte_header_line_is_refused_with_memory_near_the_bound() {
        let (mut far, near) = tokio::io::duplex(1 << 16);
        let writer = tokio::spawn(async move {
            let _ = far.write_all(b"GET / HTTP/1.1\r\nX-Long: ").await;
            let _ = far.write_all(&vec![b'a'; 1 << 20]).await;
        });
        let limits = Limits {
            max_head: 16 * 1024,
            max_headers: 64,
        };
        let mut reader = Reader::new(near);
        let error = reader.request_head(limits).await.unwrap_err();
        assert!(matches!(error, Error::HeadTooLarge { limit: 16384 }));
        // Growth may double the buffer once past the bound, never more.
        assert!(
            reader.buf.capacity() <= 2 * (limits.max_head + READ_CHUNK),
            "{}",
            reader.buf.capacity()
        );
        drop(reader);
        writer.await.unwrap();
    }

    proptest::proptest! {
        #[test]
        fn any_body_bytes_end_in_a_bounded_body_or_an_error(
            data in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..3000),
            limit in 0usize..2048,
            truncate in proptest::prelude::any::<bool>(),
            chunked in proptest::prelude::any::<bool>(),
        ) {
            let runtime = tokio::runtime::Builder::new_current_thread().build().unwrap();
            let data: &'static [u8] = data.leak();
            let framing = if chunked { Framing::Chunked } else { Framing::UntilClose };
            let excess = if truncate { Excess::Truncate } else { Excess::Refuse };
            let (body, _) = runtime.block_on(read_body(data, framing, limit, excess));
            match (body, chunked) {
                (Ok(body), true) => proptest::prop_assert!(body.len() <= limit),
                (Err(Error::Malformed(_) | Error::Closed | Error::BodyTooLarge { .. }), true) => {}
                // Until close, the body is the data itself, cut or refused
                // at the limit.
                (Ok(body), false) => {
                    proptest::prop_assert!(truncate || data.len() <= limit);
                    proptest::prop_assert_eq!(&body[..], &data[..data.len().min(limit)]);
                }
                (Err(Error::BodyTooLarge { .. }), false) => {
                    proptest::prop_assert!(!truncate && data.len() > limit);
                }
                (Err(error), _) => proptest::prop_assert!(false, "{error:?}"),
            }
        }
    }
}
