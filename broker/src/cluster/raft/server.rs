//! The inter-broker RPC listener (`--cluster-listen`): one task per connection, requests on a
//! connection answered in order, a bound on concurrent connections, stopped by a token.

use std::sync::Arc;

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::node::RaftNode;
use super::rpc::{self, Request, Response};

/// Connections served at once; more wait in the kernel's backlog.
const MAX_CONNECTIONS: usize = 256;

/// Accepts connections until `shutdown`, then waits for the connection tasks to stop.
pub(crate) async fn serve(
    listener: TcpListener,
    node: Arc<RaftNode>,
    max_frame_bytes: usize,
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
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
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
                r = connection(stream, &node, max_frame_bytes) => if let Err(e) = r {
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
    max_frame_bytes: usize,
) -> Result<(), rpc::FrameError> {
    let mut conn = rpc::framed(stream, max_frame_bytes);
    while let Some(req) = rpc::recv::<_, Request>(&mut conn).await? {
        let reply = handle(node, req).await;
        rpc::send(&mut conn, &reply).await?;
    }
    Ok(())
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
