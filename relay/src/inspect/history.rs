//! The inspector's memory: the last exchanges, oldest dropped first, each
//! body cut at [`BODY_LIMIT`], and the JSON the API gives of them.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use base64::Engine;
use http::{HeaderMap, Method};
use serde_json::{Value, json};

/// How much of each body is kept: enough to read a form or a JSON
/// answer, little enough that a full history stays small in memory.
pub const BODY_LIMIT: usize = 64 * 1024;

/// How many exchanges are kept unless `--inspect-history` says otherwise.
pub const DEFAULT_SIZE: usize = 200;

/// A body as it passed: its first bytes, how many it had, and whether it
/// ended. Shared between the history and the body that fills it as its
/// frames pass.
pub(crate) type SharedCut = Arc<Mutex<Cut>>;

/// What the inspector kept of one body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cut {
    limit: usize,
    kept: Vec<u8>,
    size: u64,
    ended: bool,
}

impl Cut {
    /// Nothing seen yet; keeps at most `limit` bytes.
    pub fn new(limit: usize) -> Cut {
        Cut {
            limit,
            kept: Vec::new(),
            size: 0,
            ended: false,
        }
    }

    /// Counts `data`, and keeps what fits under the limit.
    pub fn push(&mut self, data: &[u8]) {
        let room = self.limit.saturating_sub(self.kept.len());
        self.kept.extend_from_slice(&data[..data.len().min(room)]);
        self.size += data.len() as u64;
    }

    /// The body's last frame has passed.
    pub fn end(&mut self) {
        self.ended = true;
    }

    /// The bytes kept.
    pub fn kept(&self) -> &[u8] {
        &self.kept
    }

    /// Whether bytes were seen past the limit.
    pub fn truncated(&self) -> bool {
        self.size > self.kept.len() as u64
    }

    /// Whether the kept bytes are the whole body: it ended, and nothing
    /// was cut. Only such a request can be sent again as it was.
    pub fn whole(&self) -> bool {
        self.ended && !self.truncated()
    }

    /// The body's JSON: `size` (bytes seen), `truncated`, `ended` (false
    /// while it streams, or when it was cut short), and `data`, the kept
    /// bytes as UTF-8 text (`encoding: "text"`) when they are text, else
    /// as base64 (`encoding: "base64"`). A cut in the middle of a UTF-8
    /// character still counts as text: the partial character is left out.
    pub fn json(&self) -> Value {
        let (encoding, data) = match text_of(&self.kept, self.truncated()) {
            Some(text) => ("text", text.to_owned()),
            None => (
                "base64",
                base64::engine::general_purpose::STANDARD.encode(&self.kept),
            ),
        };
        json!({
            "size": self.size,
            "truncated": self.truncated(),
            "ended": self.ended,
            "encoding": encoding,
            "data": data,
        })
    }
}

/// `bytes` as text, if they are UTF-8; when `cut`, a last character the
/// cut split in two is left out.
fn text_of(bytes: &[u8], cut: bool) -> Option<&str> {
    match std::str::from_utf8(bytes) {
        Ok(text) => Some(text),
        // `error_len() == None`: the bytes end inside a character.
        Err(error) if cut && error.error_len().is_none() => {
            std::str::from_utf8(&bytes[..error.valid_up_to()]).ok()
        }
        Err(_) => None,
    }
}

/// One request and its response, as the inspector keeps them.
#[derive(Debug, Clone)]
pub struct Exchange {
    /// Given when the exchange enters the history, rising: a client asks
    /// for the ones after the last it saw.
    pub id: u64,
    /// The exchange this one replays, if it is a replay.
    pub replay_of: Option<u64>,
    /// The request's method.
    pub method: Method,
    /// The request's path and query, as the visitor sent them.
    pub target: String,
    /// The request's header fields, as they reached `expose`.
    pub request_headers: HeaderMap,
    /// The request's body, filled as the origin reads it.
    pub request_body: SharedCut,
    /// The response's status.
    pub status: u16,
    /// From the request's arrival to the response's head.
    pub duration_ms: u64,
    /// The response's header fields, as the visitor gets them.
    pub response_headers: HeaderMap,
    /// The response's body, filled as it passes to the visitor.
    pub response_body: SharedCut,
}

impl Exchange {
    /// The exchange's JSON: `id`, `replay_of`, `method`, `target`,
    /// `status`, `duration_ms`, then `request` and `response`, each with
    /// `headers` (`[name, value]` pairs, in order, repeats kept; a value
    /// that is not text shown lossily) and `body` (see [`Cut::json`]).
    pub fn json(&self) -> Value {
        json!({
            "id": self.id,
            "replay_of": self.replay_of,
            "method": self.method.as_str(),
            "target": self.target,
            "status": self.status,
            "duration_ms": self.duration_ms,
            "request": {
                "headers": headers_json(&self.request_headers),
                "body": lock(&self.request_body).json(),
            },
            "response": {
                "headers": headers_json(&self.response_headers),
                "body": lock(&self.response_body).json(),
            },
        })
    }
}

/// A body's cut, whatever a panicking holder left: it is only counts and
/// bytes, never half an invariant.
pub(crate) fn lock(cut: &SharedCut) -> std::sync::MutexGuard<'_, Cut> {
    cut.lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn headers_json(headers: &HeaderMap) -> Value {
    let pairs = headers
        .iter()
        .map(|(name, value)| json!([name.as_str(), String::from_utf8_lossy(value.as_bytes())]));
    Value::Array(pairs.collect())
}

/// The last exchanges, at most `size`, oldest first.
#[derive(Debug)]
pub struct History {
    size: usize,
    last_id: u64,
    exchanges: VecDeque<Exchange>,
}

impl History {
    /// An empty history of at most `size` exchanges (at least one).
    pub fn new(size: usize) -> History {
        History {
            size: size.max(1),
            last_id: 0,
            exchanges: VecDeque::new(),
        }
    }

    /// Adds `exchange` under the next id, dropping the oldest past the
    /// bound; returns the id.
    pub fn push(&mut self, mut exchange: Exchange) -> u64 {
        self.last_id += 1;
        exchange.id = self.last_id;
        while self.exchanges.len() >= self.size {
            self.exchanges.pop_front();
        }
        self.exchanges.push_back(exchange);
        self.last_id
    }

    /// The exchange `id`, while it is kept.
    pub fn get(&self, id: u64) -> Option<&Exchange> {
        // Ids rise with the position: a binary search would do, but the
        // history is small.
        self.exchanges.iter().find(|exchange| exchange.id == id)
    }

    /// The exchanges newer than `after` (all without it), newest first.
    pub fn newest_first(&self, after: Option<u64>) -> impl Iterator<Item = &Exchange> {
        let after = after.unwrap_or(0);
        (self.exchanges.iter().rev()).take_while(move |exchange| exchange.id > after)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cut(limit: usize, pushes: &[&[u8]], ended: bool) -> Cut {
        let mut cut = Cut::new(limit);
        for data in pushes {
            cut.push(data);
        }
        if ended {
            cut.end();
        }
        cut
    }

    #[test]
    fn bodies_are_cut_at_the_limit_and_say_so() {
        // (limit, frames, ended, kept, size, truncated, whole)
        type Row = (
            usize,
            &'static [&'static [u8]],
            bool,
            &'static [u8],
            u64,
            bool,
            bool,
        );
        let table: &[Row] = &[
            (4, &[], true, b"", 0, false, true),
            (4, &[b"ab", b"cd"], true, b"abcd", 4, false, true),
            (4, &[b"abc", b"de"], true, b"abcd", 5, true, false),
            (4, &[b"abcdef", b"gh"], true, b"abcd", 8, true, false),
            (4, &[b"ab"], false, b"ab", 2, false, false),
            (0, &[b"a"], true, b"", 1, true, false),
        ];
        for &(limit, frames, ended, kept, size, truncated, whole) in table {
            let cut = cut(limit, frames, ended);
            let seen = (cut.kept(), cut.size, cut.truncated(), cut.whole());
            assert_eq!(seen, (kept, size, truncated, whole), "{frames:?}");
        }
    }

    #[test]
    fn body_json_is_text_when_it_can_be_and_base64_otherwise() {
        // (limit, bytes, encoding, data)
        let table: &[(usize, &[u8], &str, &str)] = &[
            (8, b"hello", "text", "hello"),
            (8, b"\xff\x00", "base64", "/wA="),
            // "é" is two bytes; a cut after its first is still text.
            (2, "aé".as_bytes(), "text", "a"),
            // Not cut, yet ending inside a character: not text.
            (8, b"a\xc3", "base64", "YcM="),
        ];
        for &(limit, bytes, encoding, data) in table {
            let json = cut(limit, &[bytes], true).json();
            assert_eq!(json["encoding"], encoding, "{bytes:?}");
            assert_eq!(json["data"], data, "{bytes:?}");
            assert_eq!(json["size"], bytes.len(), "{bytes:?}");
        }
    }

    fn exchange(target: &str) -> Exchange {
        let mut headers = HeaderMap::new();
        headers.append("x-a", "1".parse().unwrap());
        headers.append("x-a", "2".parse().unwrap());
        Exchange {
            id: 0,
            replay_of: None,
            method: Method::POST,
            target: target.to_owned(),
            request_headers: headers,
            request_body: Arc::new(Mutex::new(cut(64, &[b"hi"], true))),
            status: 201,
            duration_ms: 7,
            response_headers: HeaderMap::new(),
            response_body: Arc::new(Mutex::new(cut(64, &[], false))),
        }
    }

    #[test]
    fn the_history_keeps_the_newest_and_lists_them_newest_first() {
        // (size, pushed, after, listed ids)
        let table: &[(usize, u64, Option<u64>, &[u64])] = &[
            (3, 0, None, &[]),
            (3, 2, None, &[2, 1]),
            (3, 5, None, &[5, 4, 3]),
            (3, 5, Some(3), &[5, 4]),
            (3, 5, Some(5), &[]),
            (3, 5, Some(1), &[5, 4, 3]),
            (1, 2, None, &[2]),
            (0, 2, None, &[2]),
        ];
        for &(size, pushed, after, listed) in table {
            let mut history = History::new(size);
            for n in 1..=pushed {
                assert_eq!(history.push(exchange(&format!("/{n}"))), n);
            }
            let ids: Vec<u64> = history.newest_first(after).map(|e| e.id).collect();
            assert_eq!(ids, listed, "size {size}, {pushed} pushed, after {after:?}");
            let kept = (1..=pushed).filter(|&id| history.get(id).is_some()).count();
            assert_eq!(kept as u64, pushed.min(size.max(1) as u64), "size {size}");
        }
    }

    #[test]
    fn an_exchange_has_the_json_shape_the_page_reads() {
        let mut history = History::new(4);
        let id = history.push(exchange("/lamp/x?y=1"));
        let json = history.get(id).unwrap().json();
        let expected = json!({
            "id": 1,
            "replay_of": null,
            "method": "POST",
            "target": "/lamp/x?y=1",
            "status": 201,
            "duration_ms": 7,
            "request": {
                "headers": [["x-a", "1"], ["x-a", "2"]],
                "body": {"size": 2, "truncated": false, "ended": true, "encoding": "text", "data": "hi"},
            },
            "response": {
                "headers": [],
                "body": {"size": 0, "truncated": false, "ended": false, "encoding": "text", "data": ""},
            },
        });
        assert_eq!(json, expected);
    }
}
