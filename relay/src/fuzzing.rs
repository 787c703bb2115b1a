//! For the fuzz targets in `fuzz/` only: not an API, hidden from the docs
//! and free to change in any release. The long-poll form parsing reads a
//! registration's untrusted bytes, and routing a public request's head,
//! but both are private to the relay, so this lends the targets exactly
//! what they drive and nothing else.

use http::{Request, Uri};

use crate::Routing;
pub use crate::http::form::{Params, decode, encode};

/// A routed public request, as owned data a fuzz target can check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    /// The name it is for.
    pub name: String,
    /// The target its peer gets.
    pub target: Uri,
    /// The host it named, as written (with any port).
    pub host: Option<String>,
}

/// Routes `request` as the relay routes a public request, for a name
/// whose claim asked for its name taken off when `strip_prefix`. The error is
/// why it is refused, only for a failing target to show: which refusal
/// it is is not part of the routing rules.
pub fn route<B>(
    routing: &Routing,
    strip_prefix: bool,
    request: &Request<B>,
) -> Result<Route, String> {
    let routed = crate::route::route(routing, request).and_then(|routed| {
        let path = strip_prefix && matches!(routing, Routing::Path);
        let target = match path {
            true => crate::route::without_name(&routed.target, &routed.name)?,
            false => routed.target,
        };
        Ok((routed.name, target, routed.host))
    });
    match routed {
        Ok((name, target, host)) => Ok(Route { name, target, host }),
        Err(unrouted) => Err(format!("{unrouted:?}")),
    }
}
