//! Upgrades through the relay (WebSocket and the like): once both hops
//! have switched, their bytes are copied both ways.

use http::HeaderMap;
use http::header::{CONNECTION, HeaderValue, UPGRADE};
use hyper::upgrade::OnUpgrade;
use hyper_util::rt::TokioIo;
use tracing::debug;

/// The `Upgrade` value of a request that asks to switch protocols: both
/// `Upgrade` and the `upgrade` token in `Connection`.
pub fn requested(headers: &HeaderMap) -> Option<HeaderValue> {
    let connection_upgrade = headers
        .get_all(CONNECTION)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .any(|token| token.trim().eq_ignore_ascii_case("upgrade"));
    connection_upgrade
        .then(|| headers.get(UPGRADE).cloned())
        .flatten()
}

/// Puts back the two fields that ask the next hop to switch, after the
/// hop-by-hop fields were removed.
pub fn restore(headers: &mut HeaderMap, upgrade: HeaderValue) {
    headers.insert(CONNECTION, HeaderValue::from_static("upgrade"));
    headers.insert(UPGRADE, upgrade);
}

/// Waits for both hops to switch, then copies bytes between them until
/// either side closes.
pub fn spawn(near: OnUpgrade, far: OnUpgrade) {
    tokio::spawn(async move {
        let (near, far) = match tokio::try_join!(near, far) {
            Ok(both) => both,
            Err(error) => return debug!(%error, "an upgrade through the relay failed"),
        };
        let (mut near, mut far) = (TokioIo::new(near), TokioIo::new(far));
        if let Err(error) = tokio::io::copy_bidirectional(&mut near, &mut far).await {
            debug!(%error, "an upgraded stream ended with an error");
        }
    });
}
