//! Protocol-faithful stand-ins for the outside world, for tests, the simulator and demos
//! (feature `fakes`). A fake is never a default for real calls.

pub mod business;
pub mod caller;
pub mod carrier;
pub mod deepgram;
pub mod elevenlabs;
pub mod llm;
mod playout;
pub mod profile;
pub mod twilio;

use std::convert::Infallible;
use std::future::Future;

use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

/// Serves HTTP/1.1 (with WebSocket upgrades) on `listener`, each request answered by `handle`,
/// until the returned task is aborted. The HTTP fakes share it.
fn serve_http<F, Fut, B>(listener: TcpListener, handle: F) -> JoinHandle<()>
where
    F: Fn(Request<Incoming>) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = Result<Response<B>, Infallible>> + Send + 'static,
    B: hyper::body::Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else { continue };
            // Like the real service: small messages go out at once, not behind Nagle.
            let _ = stream.set_nodelay(true);
            let handle = handle.clone();
            tokio::spawn(async move {
                let _ = http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service_fn(handle))
                    .with_upgrades()
                    .await;
            });
        }
    })
}
