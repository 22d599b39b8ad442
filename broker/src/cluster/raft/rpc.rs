//! The inter-broker RPC messages and their framing.
//!
//! A frame is a 4-byte big-endian length followed by one JSON message (tokio-util's
//! `LengthDelimitedCodec`); a frame over the configured limit closes the connection. A connection
//! carries one request at a time: the client sends a [`Request`] and reads one [`Response`].
//! Decoding never panics: malformed input becomes an error that closes the connection.

use bytes::Bytes;
use futures::{SinkExt, StreamExt};
use openraft::error::{InstallSnapshotError, RaftError};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse,
    VoteRequest, VoteResponse,
};
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_util::codec::{Framed, LengthDelimitedCodec};

use super::{MetadataBatch, TypeConfig};

/// A request from one broker to another.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) enum Request {
    AppendEntries(AppendEntriesRequest<TypeConfig>),
    Vote(VoteRequest<u64>),
    InstallSnapshot(InstallSnapshotRequest<TypeConfig>),
    /// A follower's commit, for the leader to propose.
    ForwardCommit(MetadataBatch),
    /// A broker outside the voter list asks to be added as a learner; `forwarded` when a voter
    /// passes it on to the leader (it is forwarded at most once).
    Join {
        id: u64,
        addr: String,
        forwarded: bool,
    },
    /// A broker's liveness signal, for the leader (the controller) to record.
    Heartbeat {
        broker_id: i32,
    },
}

/// Why the receiver did not do what was asked.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub(crate) enum Refusal {
    /// This node is not the leader; `leader` is the one it knows of.
    #[error("not the leader (leader is {leader:?})")]
    NotLeader { leader: Option<u64> },
    #[error("{0}")]
    Failed(String),
}

/// A batch committed and applied on the leader.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Committed {
    /// Its log index.
    pub(crate) index: u64,
    /// Whether its precondition held (see [`MetadataBatch::if_next_producer_id`]).
    pub(crate) applied: bool,
}

/// The reply to a [`Request`], of the same kind.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) enum Response {
    AppendEntries(Result<AppendEntriesResponse<u64>, RaftError<u64>>),
    Vote(Result<VoteResponse<u64>, RaftError<u64>>),
    InstallSnapshot(Result<InstallSnapshotResponse<u64>, RaftError<u64, InstallSnapshotError>>),
    /// ForwardCommit: where the batch was committed and applied on the leader.
    Committed(Result<Committed, Refusal>),
    /// Join or Heartbeat.
    Done(Result<(), Refusal>),
}

/// Errors of one framed exchange.
#[derive(Debug, thiserror::Error)]
pub(crate) enum FrameError {
    #[error("rpc i/o: {0}")]
    Io(#[from] std::io::Error),
    #[error("rpc message could not be decoded: {0}")]
    Decode(#[from] serde_json::Error),
    #[error("rpc connection closed by the peer")]
    Closed,
}

/// A framed RPC connection.
pub(crate) type Conn<S> = Framed<S, LengthDelimitedCodec>;

/// Frames `io` with a limit of `max_frame_bytes` per message.
pub(crate) fn framed<S: AsyncRead + AsyncWrite>(io: S, max_frame_bytes: usize) -> Conn<S> {
    let codec = LengthDelimitedCodec::builder()
        .max_frame_length(max_frame_bytes)
        .new_codec();
    Framed::new(io, codec)
}

/// Sends one message.
pub(crate) async fn send<S, T>(conn: &mut Conn<S>, msg: &T) -> Result<(), FrameError>
where
    S: AsyncRead + AsyncWrite + Unpin,
    T: Serialize,
{
    let bytes = serde_json::to_vec(msg)?;
    conn.send(Bytes::from(bytes)).await?;
    Ok(())
}

/// Receives one message; `Ok(None)` when the peer closed the connection between messages.
pub(crate) async fn recv<S, T>(conn: &mut Conn<S>) -> Result<Option<T>, FrameError>
where
    S: AsyncRead + AsyncWrite + Unpin,
    T: for<'de> Deserialize<'de>,
{
    match conn.next().await {
        None => Ok(None),
        Some(frame) => Ok(Some(serde_json::from_slice(&frame?)?)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncWriteExt;

    #[tokio::test]
    async fn messages_round_trip_through_frames() {
        let (a, b) = tokio::io::duplex(1 << 16);
        let (mut a, mut b) = (framed(a, 1 << 20), framed(b, 1 << 20));
        let batch = MetadataBatch::new(vec![crate::cluster::MetadataRecord::FenceBroker { id: 3 }]);
        send(&mut a, &Request::ForwardCommit(batch.clone()))
            .await
            .unwrap();
        send(&mut a, &Request::Heartbeat { broker_id: 7 })
            .await
            .unwrap();
        match recv::<_, Request>(&mut b).await.unwrap() {
            Some(Request::ForwardCommit(got)) => assert_eq!(got, batch),
            other => panic!("unexpected {other:?}"),
        }
        assert!(matches!(
            recv::<_, Request>(&mut b).await.unwrap(),
            Some(Request::Heartbeat { broker_id: 7 })
        ));
        drop(a);
        assert!(recv::<_, Request>(&mut b).await.unwrap().is_none());
    }

    #[tokio::test]
    async fn an_oversized_frame_is_an_error_not_an_allocation() {
        let (mut raw, b) = tokio::io::duplex(1 << 16);
        let mut b = framed(b, 1024);
        raw.write_all(&u32::MAX.to_be_bytes()).await.unwrap();
        assert!(matches!(
            recv::<_, Request>(&mut b).await,
            Err(FrameError::Io(_))
        ));
    }

    #[tokio::test]
    async fn garbage_and_torn_frames_are_errors() {
        let (mut raw, b) = tokio::io::duplex(1 << 16);
        let mut b = framed(b, 1024);
        raw.write_all(&5u32.to_be_bytes()).await.unwrap();
        raw.write_all(b"{nope").await.unwrap();
        assert!(matches!(
            recv::<_, Request>(&mut b).await,
            Err(FrameError::Decode(_))
        ));
        // A frame cut short by a closed connection.
        raw.write_all(&100u32.to_be_bytes()).await.unwrap();
        raw.write_all(b"{\"Heartbeat\"").await.unwrap();
        drop(raw);
        assert!(recv::<_, Request>(&mut b).await.is_err());
    }
}
