//! HTTP/1.1 written and read as raw bytes, as an attacker sends it: no
//! client library smooths over what the relay answers or when it closes.

use std::io;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

/// Where the attacker connects from. The relay bounds connections, claims
/// and parked polls per client address, so the attacker and the
/// bystander must not share one (Linux loopback answers all of 127/8).
pub const ATTACKER: IpAddr = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2));
/// Where the bystander connects from.
pub const BYSTANDER: IpAddr = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 3));

/// A TCP connection to `relay` from `local`.
pub async fn connect_from(local: IpAddr, relay: SocketAddr) -> io::Result<TcpStream> {
    let socket = TcpSocket::new_v4()?;
    socket.bind(SocketAddr::new(local, 0))?;
    let tcp = socket.connect(relay).await?;
    tcp.set_nodelay(true)?;
    Ok(tcp)
}

/// A response or request head that was read, and the bytes after it.
pub struct Head {
    /// The status of a response; 0 for a request.
    pub status: u16,
    /// The request's method; empty for a response.
    pub method: String,
    pub content_length: Option<usize>,
    /// Whether the connection can carry another exchange after the body.
    pub reusable: bool,
    /// Bytes read past the head.
    pub rest: Vec<u8>,
}

/// Reads one response head from `tcp`, starting with `buf` (bytes read
/// earlier past a previous message).
pub async fn read_response(tcp: &mut TcpStream, buf: Vec<u8>) -> io::Result<Head> {
    read_head(tcp, buf, parse_response).await
}

/// Reads one request head: what the relay sends to a peer after the 101.
pub async fn read_request(tcp: &mut TcpStream, buf: Vec<u8>) -> io::Result<Head> {
    read_head(tcp, buf, parse_request).await
}

/// A parser: the head and its length once `bytes` hold all of it.
type Parse = fn(&[u8]) -> io::Result<Option<(Head, usize)>>;

async fn read_head(tcp: &mut TcpStream, mut buf: Vec<u8>, parse: Parse) -> io::Result<Head> {
    loop {
        if let Some((mut head, len)) = parse(&buf)? {
            head.rest = buf.split_off(len);
            return Ok(head);
        }
        // A head past 64 KiB is no answer the relay would send.
        if buf.len() > 64 * 1024 {
            return Err(io::Error::other("head too large"));
        }
        let mut chunk = [0u8; 4096];
        let n = tcp.read(&mut chunk).await?;
        if n == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}

fn parse_response(bytes: &[u8]) -> io::Result<Option<(Head, usize)>> {
    let mut fields = [httparse::EMPTY_HEADER; 64];
    let mut response = httparse::Response::new(&mut fields);
    let len = match response.parse(bytes).map_err(io::Error::other)? {
        httparse::Status::Complete(len) => len,
        httparse::Status::Partial => return Ok(None),
    };
    let status = response.code.unwrap_or(0);
    Ok(Some((head(status, String::new(), response.headers), len)))
}

fn parse_request(bytes: &[u8]) -> io::Result<Option<(Head, usize)>> {
    let mut fields = [httparse::EMPTY_HEADER; 64];
    let mut request = httparse::Request::new(&mut fields);
    let len = match request.parse(bytes).map_err(io::Error::other)? {
        httparse::Status::Complete(len) => len,
        httparse::Status::Partial => return Ok(None),
    };
    let method = request.method.unwrap_or("").to_owned();
    Ok(Some((head(0, method, request.headers), len)))
}

fn head(status: u16, method: String, fields: &[httparse::Header]) -> Head {
    let value = |name: &str| {
        fields
            .iter()
            .find(|field| field.name.eq_ignore_ascii_case(name))
            .map(|field| String::from_utf8_lossy(field.value).to_ascii_lowercase())
    };
    let content_length = value("content-length").and_then(|length| length.trim().parse().ok());
    // Only a body of known length can be skipped to reach the next
    // answer; a chunked one ends the connection's use here.
    let chunked = value("transfer-encoding").is_some();
    let closing = value("connection").is_some_and(|c| c.contains("close"));
    Head {
        status,
        method,
        content_length,
        reusable: !chunked && !closing && status != 101,
        rest: Vec::new(),
    }
}

/// Reads a whole response with a body of known length; its status, and
/// the bytes past it when the connection can be used again.
pub async fn read_answer(tcp: &mut TcpStream, buf: Vec<u8>) -> io::Result<(u16, Option<Vec<u8>>)> {
    let head = read_response(tcp, buf).await?;
    if head.status == 101 {
        return Ok((101, None));
    }
    let length = head.content_length.unwrap_or(0);
    let mut rest = head.rest;
    while rest.len() < length {
        let mut chunk = vec![0u8; (length - rest.len()).min(64 * 1024)];
        let n = tcp.read(&mut chunk).await?;
        if n == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        rest.extend_from_slice(&chunk[..n]);
    }
    let after = rest.split_off(length);
    Ok((head.status, head.reusable.then_some(after)))
}

/// Waits until the relay closes `tcp` (or answers and then closes); what
/// it sent meanwhile.
pub async fn until_closed(tcp: &mut TcpStream) -> Vec<u8> {
    let mut answer = Vec::new();
    let _ = tcp.read_to_end(&mut answer).await;
    answer
}

/// Writes `chunk` until the relay stops taking it; how many bytes it
/// took, in the socket buffers and beyond.
pub async fn write_until_cut(tcp: &mut TcpStream, chunk: &[u8]) -> usize {
    let mut written = 0;
    while tcp.write_all(chunk).await.is_ok() {
        written += chunk.len();
    }
    written
}

/// The status in the first line of `answer`, if it holds one.
pub fn status_of(answer: &[u8]) -> Option<u16> {
    let line = answer.split(|&b| b == b'\n').next()?;
    let text = std::str::from_utf8(line).ok()?;
    text.strip_prefix("HTTP/1.1 ")?.get(..3)?.parse().ok()
}
