//! `--inspect`: the inspector beside the tunnel. It records what
//! [`Forward`] passes, and replays through [`Forward::forward`], handed
//! over as a function so that `inspect` names nothing of `expose`.

use std::sync::Arc;

use super::forward::Forward;
use crate::cli::ExposeArgs;
use crate::inspect::{self, Inspector, Replay};

/// Starts the inspector, if `args` ask for one, replaying through
/// `forward`; calls `announce` with its URL once it listens.
pub(super) async fn start(
    args: &ExposeArgs,
    forward: &Forward,
    announce: impl FnOnce(String) + Send,
) -> Result<Option<Inspector>, String> {
    let Some(addr) = args.inspect else {
        return Ok(None);
    };
    let listener = inspect::listen(addr, args.inspect_public).await?;
    let bound = listener.local_addr().map_err(|error| error.to_string())?;
    let size = (args.inspect_history).map_or(inspect::history::DEFAULT_SIZE, |n| {
        usize::try_from(n).unwrap_or(usize::MAX)
    });
    let inspector = Inspector::new(size);
    let forward = forward.clone();
    let replay: Replay = Arc::new(move |request| Box::pin(forward.forward(request)));
    tokio::spawn(inspect::serve(listener, inspector.clone(), replay));
    announce(format!("http://{bound}"));
    Ok(Some(inspector))
}
