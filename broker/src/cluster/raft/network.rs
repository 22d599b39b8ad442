//! The client side of the inter-broker RPC: a small pool of reusable connections per peer address,
//! a timeout on every call, and openraft's network traits on top.
//!
//! A connection is taken from the pool for one exchange and returned only after a complete reply;
//! any error drops it, so a half-read reply can never be mistaken for the next one.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use openraft::BasicNode;
use openraft::error::{
    InstallSnapshotError, NetworkError, RPCError, RaftError, RemoteError, Unreachable,
};
use openraft::network::{RPCOption, RaftNetwork, RaftNetworkFactory};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse,
    VoteRequest, VoteResponse,
};
use tokio::net::TcpStream;

use super::TypeConfig;
use super::rpc::{self, Conn, FrameError, Request, Response};

/// Idle connections kept per peer.
const POOL_PER_PEER: usize = 4;

/// Errors of one call.
#[derive(Debug, thiserror::Error)]
pub(crate) enum CallError {
    #[error("connecting to {addr}: {source}")]
    Connect {
        addr: String,
        #[source]
        source: std::io::Error,
    },
    #[error("rpc to {addr} timed out after {timeout:?}")]
    Timeout { addr: String, timeout: Duration },
    #[error("rpc to {addr}: {source}")]
    Frame {
        addr: String,
        #[source]
        source: FrameError,
    },
    #[error("rpc to {addr}: unexpected reply {reply}")]
    Unexpected { addr: String, reply: String },
}

/// Connections to other brokers' RPC listeners.
#[derive(Debug)]
pub(crate) struct Peers {
    /// Idle connections by address. Never held across `.await`.
    idle: Mutex<HashMap<String, Vec<Conn<TcpStream>>>>,
    max_frame_bytes: usize,
    timeout: Duration,
}

impl Peers {
    pub(crate) fn new(max_frame_bytes: usize, timeout: Duration) -> Self {
        Peers {
            idle: Mutex::new(HashMap::new()),
            max_frame_bytes,
            timeout,
        }
    }

    /// The default per-call timeout.
    pub(crate) fn timeout(&self) -> Duration {
        self.timeout
    }

    fn take(&self, addr: &str) -> Option<Conn<TcpStream>> {
        self.idle
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get_mut(addr)
            .and_then(Vec::pop)
    }

    fn give_back(&self, addr: &str, conn: Conn<TcpStream>) {
        let mut idle = self
            .idle
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let list = idle.entry(addr.to_owned()).or_default();
        if list.len() < POOL_PER_PEER {
            list.push(conn);
        }
    }

    /// Sends `req` to `addr` and waits for the reply, all within `timeout`.
    pub(crate) async fn call(
        &self,
        addr: &str,
        req: &Request,
        timeout: Duration,
    ) -> Result<Response, CallError> {
        match tokio::time::timeout(timeout, self.exchange(addr, req)).await {
            Ok(r) => r,
            Err(_) => Err(CallError::Timeout {
                addr: addr.to_owned(),
                timeout,
            }),
        }
    }

    async fn exchange(&self, addr: &str, req: &Request) -> Result<Response, CallError> {
        let frame = |source| CallError::Frame {
            addr: addr.to_owned(),
            source,
        };
        // A pooled connection may have been closed by the peer meanwhile (idle timeout, restart):
        // when sending on it fails, or it is closed before any reply, go on with a fresh one. A
        // peer closes only between requests, so the request was not handled; even if it was, the
        // requests are idempotent (Raft's) or deduplicated (a commit's batch id).
        if let Some(mut conn) = self.take(addr)
            && rpc::send(&mut conn, req).await.is_ok()
        {
            match rpc::recv::<_, Response>(&mut conn).await {
                Ok(Some(reply)) => {
                    self.give_back(addr, conn);
                    return Ok(reply);
                }
                Ok(None) | Err(FrameError::Io(_)) => {}
                Err(source) => {
                    return Err(CallError::Frame {
                        addr: addr.to_owned(),
                        source,
                    });
                }
            }
        }
        let stream = TcpStream::connect(addr)
            .await
            .map_err(|source| CallError::Connect {
                addr: addr.to_owned(),
                source,
            })?;
        let _ = stream.set_nodelay(true);
        let mut conn = rpc::framed(stream, self.max_frame_bytes);
        rpc::send(&mut conn, req).await.map_err(frame)?;
        self.finish(addr, conn).await
    }

    async fn finish(&self, addr: &str, mut conn: Conn<TcpStream>) -> Result<Response, CallError> {
        let reply = rpc::recv::<_, Response>(&mut conn)
            .await
            .map_err(|source| CallError::Frame {
                addr: addr.to_owned(),
                source,
            })?
            .ok_or_else(|| CallError::Frame {
                addr: addr.to_owned(),
                source: FrameError::Closed,
            })?;
        self.give_back(addr, conn);
        Ok(reply)
    }
}

/// openraft's view of the network: one client per target node.
#[derive(Debug, Clone)]
pub(crate) struct Network {
    pub(crate) peers: Arc<Peers>,
}

impl RaftNetworkFactory<TypeConfig> for Network {
    type Network = PeerClient;

    async fn new_client(&mut self, target: u64, node: &BasicNode) -> PeerClient {
        PeerClient {
            target,
            addr: node.addr.clone(),
            peers: self.peers.clone(),
        }
    }
}

/// The client of one target node.
#[derive(Debug)]
pub(crate) struct PeerClient {
    target: u64,
    addr: String,
    peers: Arc<Peers>,
}

impl PeerClient {
    async fn call<E: std::error::Error>(
        &self,
        req: &Request,
        option: &RPCOption,
    ) -> Result<Response, RPCError<u64, BasicNode, E>> {
        self.peers
            .call(&self.addr, req, option.hard_ttl())
            .await
            .map_err(|e| match e {
                CallError::Connect { .. } => RPCError::Unreachable(Unreachable::new(&e)),
                _ => RPCError::Network(NetworkError::new(&e)),
            })
    }

    fn unexpected<E: std::error::Error>(&self, reply: &Response) -> RPCError<u64, BasicNode, E> {
        let e = CallError::Unexpected {
            addr: self.addr.clone(),
            reply: format!("{reply:?}").chars().take(200).collect(),
        };
        RPCError::Network(NetworkError::new(&e))
    }
}

impl RaftNetwork<TypeConfig> for PeerClient {
    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<AppendEntriesResponse<u64>, RPCError<u64, BasicNode, RaftError<u64>>> {
        match self.call(&Request::AppendEntries(rpc), &option).await? {
            Response::AppendEntries(r) => {
                r.map_err(|e| RPCError::RemoteError(RemoteError::new(self.target, e)))
            }
            other => Err(self.unexpected(&other)),
        }
    }

    async fn install_snapshot(
        &mut self,
        rpc: InstallSnapshotRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<
        InstallSnapshotResponse<u64>,
        RPCError<u64, BasicNode, RaftError<u64, InstallSnapshotError>>,
    > {
        match self.call(&Request::InstallSnapshot(rpc), &option).await? {
            Response::InstallSnapshot(r) => {
                r.map_err(|e| RPCError::RemoteError(RemoteError::new(self.target, e)))
            }
            other => Err(self.unexpected(&other)),
        }
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<u64>,
        option: RPCOption,
    ) -> Result<VoteResponse<u64>, RPCError<u64, BasicNode, RaftError<u64>>> {
        match self.call(&Request::Vote(rpc), &option).await? {
            Response::Vote(r) => {
                r.map_err(|e| RPCError::RemoteError(RemoteError::new(self.target, e)))
            }
            other => Err(self.unexpected(&other)),
        }
    }
}
