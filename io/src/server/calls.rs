//! What the media routes do with a new stream: run a call on it, to its end.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use crate::call::{CallDeps, CallReport, MediaLink, run_call};
use crate::carriers::websocket::WsTransport;

/// The link the server's media routes hand to a call: a WebSocket upgraded by hyper.
pub type ServerLink = MediaLink<WsTransport<hyper_util::rt::TokioIo<hyper::upgrade::Upgraded>>>;

/// What a media route does with a new stream: runs a call on it, to its end. The server
/// counts the call as live until the returned future finishes.
pub trait CallHandler: Send + Sync + std::fmt::Debug {
    fn run(&self, link: ServerLink) -> Pin<Box<dyn Future<Output = ()> + Send>>;
}

/// Runs each stream's call with the dependencies current when it starts (`serve` takes the
/// configuration snapshot of the moment), and hands its report to `finished`.
pub struct Calls {
    deps: Box<dyn Fn() -> Arc<CallDeps> + Send + Sync>,
    finished: Arc<dyn Fn(CallReport) + Send + Sync>,
}

impl std::fmt::Debug for Calls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Calls").finish_non_exhaustive()
    }
}

impl Calls {
    pub fn new(
        deps: impl Fn() -> Arc<CallDeps> + Send + Sync + 'static,
        finished: impl Fn(CallReport) + Send + Sync + 'static,
    ) -> Calls {
        Calls { deps: Box::new(deps), finished: Arc::new(finished) }
    }
}

impl CallHandler for Calls {
    fn run(&self, link: ServerLink) -> Pin<Box<dyn Future<Output = ()> + Send>> {
        let (deps, finished) = ((self.deps)(), self.finished.clone());
        Box::pin(async move { finished(run_call(link, deps).await) })
    }
}
