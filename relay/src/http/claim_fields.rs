//! The fields of ptth's own that a claim carries (docs/protocol.md,
//! "The relay on the wire"): the peer's choices for its name.

use http::HeaderMap;
use http::header::{HeaderName, HeaderValue};

/// A claim's choice of whether path routing takes `/<name>` off the
/// targets its peers get: `?1` or `?0`, a structured-field boolean
/// (RFC 8941, section 3.3.6); docs/relay.md, "Stripping the name".
pub const PTTH_STRIP_PREFIX: HeaderName = HeaderName::from_static("ptth-strip-prefix");

/// The choice a claim's `Ptth-Strip-Prefix` makes, if it has one; `Err`
/// for a value that is not one boolean.
pub fn strip_prefix(headers: &HeaderMap) -> Result<Option<bool>, ()> {
    match only_value(headers, &PTTH_STRIP_PREFIX)?.map(HeaderValue::as_bytes) {
        None => Ok(None),
        Some(b"?1") => Ok(Some(true)),
        Some(b"?0") => Ok(Some(false)),
        Some(_) => Err(()),
    }
}

/// A claim's ask for a public TCP port (docs/relay.md, "TCP tunnels"):
/// `0` for any port of the range, else that port.
pub const PTTH_TCP_PORT: HeaderName = HeaderName::from_static("ptth-tcp-port");

/// The port a claim's `Ptth-Tcp-Port` asks for, if it has one: a
/// structured-field integer, 0 to 65535, digits only; `Err` for anything
/// else or for the field twice.
pub fn tcp_port(headers: &HeaderMap) -> Result<Option<u16>, ()> {
    match only_value(headers, &PTTH_TCP_PORT)?.map(HeaderValue::as_bytes) {
        None => Ok(None),
        Some(digits)
            if !digits.is_empty() && digits.len() <= 5 && digits.iter().all(u8::is_ascii_digit) =>
        {
            let text = std::str::from_utf8(digits).map_err(|_| ())?;
            text.parse::<u16>().map(Some).map_err(|_| ())
        }
        Some(_) => Err(()),
    }
}

/// The one value of the field `name`, if it is there; `Err` when it is
/// there twice, since a choice made twice is no choice.
fn only_value<'a>(
    headers: &'a HeaderMap,
    name: &HeaderName,
) -> Result<Option<&'a HeaderValue>, ()> {
    let mut values = headers.get_all(name).iter();
    let first = values.next();
    match values.next() {
        Some(_) => Err(()),
        None => Ok(first),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A head with the field `name` once per value.
    fn fields(name: &HeaderName, values: &[&'static str]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for value in values {
            headers.append(name, HeaderValue::from_static(value));
        }
        headers
    }

    #[test]
    fn a_claim_s_strip_prefix_is_one_structured_boolean() {
        for (values, choice) in [
            (&[][..], Ok(None)),
            (&["?1"][..], Ok(Some(true))),
            (&["?0"][..], Ok(Some(false))),
            (&["1"][..], Err(())),
            (&["true"][..], Err(())),
            (&["?1 "][..], Err(())),
            (&["?1", "?1"][..], Err(())),
        ] {
            assert_eq!(
                strip_prefix(&fields(&PTTH_STRIP_PREFIX, values)),
                choice,
                "{values:?}"
            );
        }
    }

    #[test]
    fn a_claim_s_tcp_port_is_one_integer_of_a_port() {
        for (values, port) in [
            (&[][..], Ok(None)),
            (&["0"][..], Ok(Some(0))),
            (&["22022"][..], Ok(Some(22022))),
            (&["65535"][..], Ok(Some(65535))),
            (&["65536"][..], Err(())),
            (&["-1"][..], Err(())),
            (&["+22"][..], Err(())),
            (&[" 22"][..], Err(())),
            (&[""][..], Err(())),
            (&["000022"][..], Err(())),
            (&["22", "23"][..], Err(())),
        ] {
            assert_eq!(
                tcp_port(&fields(&PTTH_TCP_PORT, values)),
                port,
                "{values:?}"
            );
        }
    }
}
