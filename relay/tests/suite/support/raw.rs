//! HTTP/1.1 written and read as raw bytes, as the shipped long-poll
//! clients send it.

use std::net::SocketAddr;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// An answer: status, headers (names lower-cased, in order) and body.
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Answer {
    /// The first value of `name`.
    pub fn header<'a>(&'a self, name: &'a str) -> Option<&'a str> {
        self.all(name).next()
    }

    /// Every value of `name`.
    pub fn all<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> {
        self.headers
            .iter()
            .filter(move |(found, _)| found == name)
            .map(|(_, value)| value.as_str())
    }

    /// The URL of the `Link` with `rel`.
    pub fn link(&self, rel: &str) -> String {
        let wanted = format!("rel=\"{rel}\"");
        self.all("link")
            .find(|link| link.contains(&wanted))
            .and_then(|link| link.split('<').nth(1)?.split('>').next())
            .unwrap_or_else(|| panic!("no {rel} link in {:?}", self.headers))
            .to_owned()
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// Sends `head` (without its blank line) and `body` on a new connection,
/// and reads the whole answer.
pub async fn exchange(addr: SocketAddr, head: &str, body: &[u8]) -> Answer {
    parse(&exchange_bytes(addr, head, body).await)
}

/// [`exchange`], the answer as the bytes that came, for tests of how
/// they are spelt.
pub async fn exchange_bytes(addr: SocketAddr, head: &str, body: &[u8]) -> Vec<u8> {
    let mut tcp = TcpStream::connect(addr).await.unwrap();
    let mut bytes = format!(
        "{head}\r\nHost: {addr}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    )
    .into_bytes();
    bytes.extend_from_slice(body);
    tcp.write_all(&bytes).await.unwrap();
    let mut answer = Vec::new();
    tcp.read_to_end(&mut answer).await.unwrap();
    answer
}

/// The field lines of an answer's head, as written, after its status line.
pub fn field_lines(answer: &[u8]) -> Vec<&str> {
    let text = std::str::from_utf8(answer).unwrap_or_default();
    let head = text.split("\r\n\r\n").next().unwrap_or_default();
    head.split("\r\n").skip(1).collect()
}

/// Every value of the field spelt exactly `name`, case and all, as a
/// client that looks names up by their exact case (Java's
/// `HttpURLConnection.getHeaderFields()`) finds them.
pub fn exact<'a>(answer: &'a [u8], name: &str) -> Vec<&'a str> {
    let prefix = format!("{name}:");
    field_lines(answer)
        .into_iter()
        .filter_map(|line| line.strip_prefix(prefix.as_str()))
        .map(str::trim)
        .collect()
}

/// The path of an absolute URL.
pub fn path(url: &str) -> &str {
    let rest = url.split_once("://").map_or(url, |(_, rest)| rest);
    &rest[rest.find('/').unwrap_or(rest.len())..]
}

/// An answer read with its names lower-cased.
pub fn parse(answer: &[u8]) -> Answer {
    let mut headers = [httparse::EMPTY_HEADER; 64];
    let mut response = httparse::Response::new(&mut headers);
    let len = match response.parse(answer) {
        Ok(httparse::Status::Complete(len)) => len,
        other => panic!(
            "no answer head ({other:?}): {:?}",
            String::from_utf8_lossy(answer)
        ),
    };
    Answer {
        status: response.code.unwrap(),
        headers: response
            .headers
            .iter()
            .map(|h| {
                (
                    h.name.to_ascii_lowercase(),
                    String::from_utf8_lossy(h.value).into_owned(),
                )
            })
            .collect(),
        body: answer[len..].to_vec(),
    }
}

/// A peer's claim of `name` as a raw HTTP/1.1 upgrade to `authority`
/// (asking for HTTP/1.1 after the switch), with `fields` (`Name: value`
/// lines) added; the answer's status line's first 12 bytes
/// (`HTTP/1.1 101`) and the connection, kept open for the name.
pub async fn claim(authority: &str, name: &str, fields: &[&str]) -> (String, TcpStream) {
    let mut claim = TcpStream::connect(authority).await.unwrap();
    let mut request = format!(
        "GET /reversehttp/{name} HTTP/1.1\r\nHost: {authority}\r\n\
         Connection: upgrade\r\nUpgrade: ptth\r\nALPN: http%2F1.1\r\n"
    );
    for field in fields {
        request.push_str(field);
        request.push_str("\r\n");
    }
    request.push_str("\r\n");
    claim.write_all(request.as_bytes()).await.unwrap();
    let mut head = [0; 12];
    claim.read_exact(&mut head).await.unwrap();
    (String::from_utf8_lossy(&head).into_owned(), claim)
}

/// The claims of [`claim`] made at once, one task each, with their
/// connections kept open (so that none leaves its pool while the others
/// are judged).
pub async fn claims_at_once(
    authority: &str,
    names: impl IntoIterator<Item = String>,
    fields: &[&str],
) -> Vec<(String, TcpStream)> {
    let fields: Vec<String> = fields.iter().map(|field| (*field).to_owned()).collect();
    let claims = names.into_iter().map(|name| {
        let (authority, fields) = (authority.to_owned(), fields.clone());
        tokio::spawn(async move {
            let fields: Vec<&str> = fields.iter().map(String::as_str).collect();
            claim(&authority, &name, &fields).await
        })
    });
    (futures_util::future::join_all(claims).await.into_iter())
        .map(Result::unwrap)
        .collect()
}

/// How many of `answers` were `101`, and their status lines.
pub fn switched(answers: &[(String, TcpStream)]) -> (usize, Vec<&str>) {
    let heads: Vec<&str> = answers.iter().map(|(head, _)| head.as_str()).collect();
    let switched = heads.iter().filter(|head| **head == "HTTP/1.1 101").count();
    (switched, heads)
}
