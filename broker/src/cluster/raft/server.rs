//! The inter-broker RPC listener (`--cluster-listen`): one task per connection, requests on a
//! connection answered in order, a bound on concurrent connections and on idle time, stopped by a
//! token.

use std::sync::Arc;
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::node::RaftNode;
use super::rpc::{self, Request, Response};

/// Connections served at once; more wait in the kernel's backlog.
const MAX_CONNECTIONS: usize = 256;

/// Bounds on what one peer can hold.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Limits {
    pub(crate) max_frame_bytes: usize,
    pub(crate) idle_timeout: Duration,
}

/// Accepts connections until `shutdown`, then waits for the connection tasks to stop.
pub(crate) async fn serve(
    listener: TcpListener,
    node: Arc<RaftNode>,
    limits: Limits,
    shutdown: CancellationToken,
) {
    let tracker = TaskTracker::new();
    let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    loop {
        let permit = tokio::select! {
            () = shutdown.cancelled() => break,
            p = slots.clone().acquire_owned() => match p {
                Ok(p) => p,
                Err(_) => break,
            },
        };
        let accepted = tokio::select! {
            () = shutdown.cancelled() => break,
            a = listener.accept() => a,
        };
        let (stream, peer) = match accepted {
            Ok(a) => a,
            Err(e) => {
                tracing::warn!(error = %e, "accepting a cluster rpc connection");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let node = node.clone();
        let shutdown = shutdown.clone();
        tracker.spawn(async move {
            let _permit = permit;
            tokio::select! {
                () = shutdown.cancelled() => {}
                r = connection(stream, &node, limits) => if let Err(e) = r {
                    tracing::debug!(%peer, error = %e, "cluster rpc connection closed");
                },
            }
        });
    }
    tracker.close();
    tracker.wait().await;
}

async fn connection(
    stream: TcpStream,
    node: &RaftNode,
    limits: Limits,
) -> Result<(), rpc::FrameError> {
    let mut conn = rpc::framed(stream, limits.max_frame_bytes);
    loop {
        let Ok(next) = tokio::time::timeout(limits.idle_timeout, rpc::recv(&mut conn)).await else {
            return Ok(());
        };
        let Some(req) = next? else {
            return Ok(());
        };
        let reply = handle(node, req).await;
        rpc::send(&mut conn, &reply).await?;
    }
}

async fn handle(node: &RaftNode, req: Request) -> Response {
    match req {
        Request::AppendEntries(r) => Response::AppendEntries(node.append_entries(r).await),
        Request::Vote(r) => Response::Vote(node.raft().vote(r).await),
        Request::InstallSnapshot(r) => Response::InstallSnapshot(node.install_snapshot(r).await),
        Request::ForwardCommit(batch) => Response::Committed(node.propose(batch).await),
        Request::Join {
            id,
            addr,
            forwarded,
        } => Response::Done(node.handle_join(id, addr, forwarded).await),
        Request::Heartbeat { broker_id } => Response::Done(node.record_heartbeat(broker_id)),
    }
}
