//! Who may call a service: HTTP Basic credentials and client address
//! ranges, checked before a request reaches it.
//!
//! A device that serves through a relay is public: anyone who knows its
//! name can call it. A [`Guard`] in front of the service answers
//! requests without valid credentials with `401` and a Basic challenge,
//! and requests from clients outside the allowed ranges with `403`,
//! before the service sees them. It wraps a hyper service
//! ([`Guard::service`]) and, with the `tower` feature, is a tower
//! `Layer` for a tower service such as an axum `Router`.
//!
//! ```
//! use http_body_util::Full;
//! use hyper::body::{Bytes, Incoming};
//! use hyper::service::service_fn;
//! use hyper::{Request, Response};
//! use ptth::guard::Guard;
//!
//! let guard = Guard::new()
//!     .basic_auth("ada", "correct horse")
//!     .allow_ip("10.0.0.0/8".parse().unwrap());
//! let lamp = guard.service(service_fn(|_: Request<Incoming>| async {
//!     Ok::<_, std::convert::Infallible>(Response::new(Full::new(Bytes::from("on\n"))))
//! }));
//! let tunnel = ptth::tunnel::Builder::new("https://relay.example/reversehttp/lamp").serve(lamp);
//! # drop(tunnel);
//! ```
//!
//! # The client's address
//!
//! Behind a relay every request comes over the device's own connection,
//! so the client's address is the relay's word: a guard reads it from
//! the `X-Real-IP` field (see [`Guard::client_ip_header`]), which
//! `ptth-relay` sets to the address it judges the client's, replacing
//! any value a client sent. A guard so trusts its relay for it; behind a
//! relay that does not set the field, every request is `403` when
//! ranges are set.
//!
//! # Credentials
//!
//! A request that passes the Basic check reaches the service without its
//! `Authorization` field, so the password goes no further. User names
//! and passwords are compared in constant time; only whether a user of
//! that name exists may show in the time a refusal takes.

mod basic;
mod cidr;
mod service;

use std::fmt;
use std::net::IpAddr;
use std::sync::Arc;

use http::header::{AUTHORIZATION, HeaderName, HeaderValue, WWW_AUTHENTICATE};
use http::{Request, Response, StatusCode};
use tracing::debug;

pub use self::basic::PasswordCheck;
use self::basic::{Plain, basic_credentials, constant_time_eq};
pub use self::cidr::{Cidr, CidrError};
pub use self::service::Guarded;

/// The challenge of a `401`: Basic, in UTF-8 (RFC 7617, section 2.1).
const CHALLENGE: &str = "Basic realm=\"ptth\", charset=\"UTF-8\"";

/// Who may call a service: users with Basic credentials, and address
/// ranges. A guard with neither lets every request through.
///
/// Address ranges are checked first, so a client outside them costs no
/// password check. Cloning is cheap.
#[derive(Clone)]
pub struct Guard {
    users: Vec<User>,
    ranges: Vec<Cidr>,
    client_ip_header: HeaderName,
}

/// A user and how their password is checked.
#[derive(Clone)]
struct User {
    name: Vec<u8>,
    password: Arc<dyn PasswordCheck>,
}

impl Default for Guard {
    fn default() -> Self {
        Self::new()
    }
}

/// Names the users and ranges, never a password.
impl fmt::Debug for Guard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let users: Vec<_> = (self.users.iter())
            .map(|user| String::from_utf8_lossy(&user.name))
            .collect();
        f.debug_struct("Guard")
            .field("users", &users)
            .field("ranges", &self.ranges)
            .field("client_ip_header", &self.client_ip_header)
            .finish()
    }
}

impl Guard {
    /// A guard that lets every request through, until users or ranges
    /// are added.
    pub fn new() -> Self {
        Guard {
            users: Vec::new(),
            ranges: Vec::new(),
            client_ip_header: HeaderName::from_static("x-real-ip"),
        }
    }

    /// Admits `user` with `password`, in HTTP Basic credentials; repeat
    /// it for more users. Once one is set, a request without a user's
    /// credentials is `401`. A name with a `:` never matches, as Basic
    /// credentials cannot carry one (RFC 7617).
    ///
    /// Default is no users: no credentials are asked for.
    pub fn basic_auth(self, user: impl Into<String>, password: impl Into<String>) -> Self {
        let password = Plain(password.into().into_bytes());
        self.basic_auth_check(user, password)
    }

    /// Admits `user` with a password `check` accepts, such as one that
    /// compares a hash, in HTTP Basic credentials; as
    /// [`basic_auth`](Self::basic_auth) otherwise.
    ///
    /// Default is no users: no credentials are asked for.
    pub fn basic_auth_check(mut self, user: impl Into<String>, check: impl PasswordCheck) -> Self {
        self.users.push(User {
            name: user.into().into_bytes(),
            password: Arc::new(check),
        });
        self
    }

    /// Admits clients whose address is in `range`; repeat it for more
    /// ranges. Once one is set, a request from an address outside them
    /// all, or with no address (see
    /// [`client_ip_header`](Self::client_ip_header)), is `403`.
    ///
    /// Default is no ranges: any address, or none, passes.
    pub fn allow_ip(mut self, range: Cidr) -> Self {
        self.ranges.push(range);
        self
    }

    /// The request field that holds the client's address, as the relay
    /// reports it. Only the relay may set it: a guard is only as good as
    /// the relay's replacing what a client sent.
    ///
    /// Default is `X-Real-IP`, which `ptth-relay` sets.
    pub fn client_ip_header(mut self, name: HeaderName) -> Self {
        self.client_ip_header = name;
        self
    }

    /// Wraps `service`, a hyper service (or with the `tower` feature, a
    /// tower service), in this guard.
    pub fn service<S>(&self, service: S) -> Guarded<S> {
        Guarded::new(self.clone(), service)
    }

    /// Checks `request`: gives it back, without the `Authorization`
    /// field that carried valid credentials, or says why it is refused.
    /// A costly password check ([`PasswordCheck::is_costly`]) runs on
    /// tokio's blocking threads.
    pub async fn check<B>(&self, mut request: Request<B>) -> Result<Request<B>, Refusal> {
        self.check_address(request.headers())?;
        if self.users.is_empty() {
            return Ok(request);
        }
        let mut fields = request.headers().get_all(AUTHORIZATION).iter();
        // Two fields would leave open which one was checked.
        let (Some(field), None) = (fields.next(), fields.next()) else {
            debug!("refused: no single Authorization field");
            return Err(Refusal::Unauthorized);
        };
        let Some((name, password)) = basic_credentials(field) else {
            debug!("refused: no Basic credentials");
            return Err(Refusal::Unauthorized);
        };
        let Some(check) = self.user(&name) else {
            debug!("refused: no such user");
            return Err(Refusal::Unauthorized);
        };
        let matches = if check.is_costly() {
            let blocking = tokio::task::spawn_blocking(move || check.matches(&password));
            blocking.await.unwrap_or(false)
        } else {
            check.matches(&password)
        };
        if !matches {
            debug!("refused: wrong password");
            return Err(Refusal::Unauthorized);
        }
        request.headers_mut().remove(AUTHORIZATION);
        Ok(request)
    }

    /// Refuses a client outside the ranges, when there are ranges.
    fn check_address(&self, headers: &http::HeaderMap) -> Result<(), Refusal> {
        if self.ranges.is_empty() {
            return Ok(());
        }
        let mut fields = headers.get_all(&self.client_ip_header).iter();
        let ip = match (fields.next(), fields.next()) {
            (Some(field), None) => client_ip(field),
            _ => None,
        };
        let Some(ip) = ip else {
            debug!(header = %self.client_ip_header, "refused: no single client address");
            return Err(Refusal::Forbidden);
        };
        if !self.ranges.iter().any(|range| range.contains(ip)) {
            debug!(%ip, "refused: client outside the allowed ranges");
            return Err(Refusal::Forbidden);
        }
        Ok(())
    }

    /// The password check of the user named `name`. Every name is
    /// compared, each in constant time, so the time taken does not tell
    /// how much of a name was right.
    fn user(&self, name: &[u8]) -> Option<Arc<dyn PasswordCheck>> {
        let mut found = None;
        for user in &self.users {
            if constant_time_eq(&user.name, name) && found.is_none() {
                found = Some(user.password.clone());
            }
        }
        found
    }
}

/// An address as a field states it: the address alone, trimmed.
fn client_ip(field: &HeaderValue) -> Option<IpAddr> {
    field.to_str().ok()?.trim().parse().ok()
}

/// Why a [`Guard`] refused a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Refusal {
    /// No valid credentials: `401 Unauthorized` with a Basic challenge.
    Unauthorized,
    /// A client address outside the allowed ranges, or none: `403
    /// Forbidden`.
    Forbidden,
}

impl Refusal {
    /// The status it is answered with.
    pub fn status(self) -> StatusCode {
        match self {
            Refusal::Unauthorized => StatusCode::UNAUTHORIZED,
            Refusal::Forbidden => StatusCode::FORBIDDEN,
        }
    }

    /// The answer: the status, an empty body, and for `401` the
    /// `WWW-Authenticate: Basic realm="ptth", charset="UTF-8"` challenge.
    pub fn into_response<B: Default>(self) -> Response<B> {
        let mut response = Response::new(B::default());
        *response.status_mut() = self.status();
        if self == Refusal::Unauthorized {
            let challenge = HeaderValue::from_static(CHALLENGE);
            response.headers_mut().insert(WWW_AUTHENTICATE, challenge);
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_client_address_is_one_address_and_nothing_more() {
        for (value, ip) in [
            ("192.0.2.1", Some("192.0.2.1")),
            (" 2001:db8::1 ", Some("2001:db8::1")),
            ("192.0.2.1:80", None),
            ("192.0.2.1, 10.0.0.1", None),
            ("[::1]", None),
            ("unknown", None),
            ("", None),
        ] {
            let got = client_ip(&HeaderValue::from_static(value));
            assert_eq!(got, ip.map(|ip| ip.parse().unwrap()), "{value:?}");
        }
    }

    #[test]
    fn debug_names_users_and_no_password() {
        let guard = Guard::new().basic_auth("ada", "lovelace");
        let shown = format!("{guard:?}");
        assert!(shown.contains("ada"), "{shown}");
        assert!(!shown.contains("lovelace"), "{shown}");
    }
}
