//! TCP listener and connections: size-prefixed frames, one request processed at a time per connection
//! (as Kafka does: a client pipelines, the broker answers in request order), bounded frame size,
//! graceful shutdown.

use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt, BufReader, BufWriter};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::api::{self, Outcome};
use crate::server::Broker;

/// Accepts connections until `shutdown` fires; each connection runs on `tracker`.
pub async fn serve(
    listener: TcpListener,
    broker: Arc<Broker>,
    shutdown: CancellationToken,
    tracker: TaskTracker,
) {
    loop {
        let accepted = tokio::select! {
            () = shutdown.cancelled() => break,
            a = listener.accept() => a,
        };
        match accepted {
            Ok((stream, peer)) => {
                let _ = stream.set_nodelay(true);
                let broker = broker.clone();
                let shutdown = shutdown.clone();
                tracker.spawn(async move {
                    broker.metrics.connections.inc();
                    if let Err(e) = connection(stream, peer, &broker, &shutdown).await {
                        tracing::debug!(%peer, error = %e, "connection closed");
                    }
                    broker.metrics.connections.dec();
                });
            }
            Err(e) => {
                // Out of file descriptors and the like: log, back off briefly, keep serving.
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            }
        }
    }
}

/// Why a connection was closed by the broker.
#[derive(Debug, thiserror::Error)]
pub enum ConnectionError {
    #[error("i/o: {0}")]
    Io(#[from] std::io::Error),
    #[error("frame of {size} bytes is larger than the limit of {limit}")]
    FrameTooLarge { size: i64, limit: u32 },
    #[error("frame size {0} is negative or too small for a request header")]
    BadFrameSize(i32),
    #[error("request rejected: {0}")]
    Rejected(String),
}

async fn connection(
    stream: TcpStream,
    peer: std::net::SocketAddr,
    broker: &Broker,
    shutdown: &CancellationToken,
) -> Result<(), ConnectionError> {
    let (read, write) = stream.into_split();
    let mut reader = BufReader::with_capacity(64 * 1024, read);
    let mut writer = BufWriter::with_capacity(64 * 1024, write);
    let limit = broker.config.max_request_bytes;
    loop {
        let size = tokio::select! {
            () = shutdown.cancelled() => break,
            s = reader.read_i32() => match s {
                Ok(s) => s,
                Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => break,
                Err(e) => return Err(e.into()),
            },
        };
        // A request header is at least api key, version and correlation id.
        if size < 8 {
            return Err(ConnectionError::BadFrameSize(size));
        }
        if size as u32 > limit {
            tracing::warn!(
                size,
                limit,
                "closing a connection that sent a frame over the request size limit"
            );
            return Err(ConnectionError::FrameTooLarge {
                size: i64::from(size),
                limit,
            });
        }
        let mut frame = BytesMut::zeroed(size as usize);
        reader.read_exact(&mut frame).await?;
        let frame: Bytes = frame.freeze();
        match api::handle(broker, frame, peer).await {
            Outcome::Respond(response) => {
                writer.write_all(&response).await?;
                // Batch responses into one write while the client has more requests queued.
                if reader.buffer().len() < 4 || !frame_complete(reader.buffer()) {
                    writer.flush().await?;
                }
            }
            Outcome::NoResponse => {
                if reader.buffer().is_empty() {
                    writer.flush().await?;
                }
            }
            Outcome::Close(reason) => {
                writer.flush().await?;
                return Err(ConnectionError::Rejected(reason));
            }
        }
    }
    writer.flush().await?;
    Ok(())
}

/// Whether `buf` starts with a whole frame.
fn frame_complete(buf: &[u8]) -> bool {
    match buf.get(..4) {
        Some(len) => {
            let len = i32::from_be_bytes([len[0], len[1], len[2], len[3]]);
            len >= 0 && buf.len() >= 4 + len as usize
        }
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::frame_complete;

    #[test]
    fn frame_completeness_reads_the_size_prefix() {
        assert!(!frame_complete(&[0, 0]));
        assert!(frame_complete(&[0, 0, 0, 1, 9]));
        assert!(!frame_complete(&[0, 0, 0, 2, 9]));
        assert!(!frame_complete(&[0xff, 0xff, 0xff, 0xff, 9]));
    }
}
