//! What an idle TCP visitor connection costs the public side of each TCP
//! tunnel: the relay's resident memory per visitor against rathole's and
//! bore's servers', the same origin behind each.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::time::Duration;

use tokio::runtime::Runtime;

use crate::origin::{self, NAME, SMALL};
use crate::paths::{self, Kind};
use crate::peers::settle;
use crate::tools::rss;

/// For each TCP tunnel, its label and the growth of its public side's
/// memory per idle visitor, with `count` visitors each having made one
/// small GET (so the whole path is open) and then gone quiet.
pub fn idle(
    relay: &Path,
    tools: &Path,
    dir: &Path,
    rt: &Runtime,
    count: usize,
) -> Vec<(&'static str, u64)> {
    let origin = rt.block_on(origin::bulk());
    [Kind::ExposeTcp, Kind::Rathole, Kind::Bore]
        .into_iter()
        .map(|kind| {
            let path = paths::up(kind, origin, relay, tools, dir, rt);
            // The relay, or the tunnel's server: the first process.
            let (_, pid) = path.pids()[0];
            settle();
            let base = rss(pid);
            let visitors: Vec<TcpStream> = (0..count).map(|_| visitor(&path.base)).collect();
            settle();
            let per_visitor = rss(pid).saturating_sub(base) / count as u64;
            drop(visitors);
            (kind.label(), per_visitor)
        })
        .collect()
}

/// A connection to `base` that has had its answer to one small GET.
fn visitor(base: &str) -> TcpStream {
    let authority = base.trim_start_matches("http://");
    let mut tcp = TcpStream::connect(authority).unwrap();
    tcp.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let request = format!("GET /{NAME}/small HTTP/1.1\r\nHost: {authority}\r\n\r\n");
    tcp.write_all(request.as_bytes()).unwrap();
    let mut answer = Vec::new();
    let mut buf = [0; 4096];
    loop {
        let head = answer.windows(4).position(|w| w == b"\r\n\r\n");
        if head.is_some_and(|head| answer.len() >= head + 4 + SMALL) {
            return tcp;
        }
        let n = tcp.read(&mut buf).unwrap();
        assert!(n > 0, "{base} closed a visitor before its answer");
        answer.extend_from_slice(&buf[..n]);
    }
}
