//! The NRI socket multiplexer: two logical byte streams over one unix stream.
//!
//! NRI runs two ttrpc conversations over the single socket the plugin dials (or is handed
//! on fd 3): on conn 1 the runtime calls the plugin, on conn 2 the plugin calls the runtime.
//! Every chunk of bytes travels in a frame: `u32 conn id | u32 payload length` (big-endian)
//! followed by the payload. A frame is not a message boundary — ttrpc does its own framing
//! inside each logical stream — so each logical connection is exposed here as a plain
//! `AsyncRead + AsyncWrite` that the ttrpc crate's server and client can run on.

use std::io;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, DuplexStream};
use tokio::sync::mpsc;

/// Logical connection on which the runtime calls the plugin (plugin is the ttrpc server).
pub const PLUGIN_SERVICE_CONN: u32 = 1;
/// Logical connection on which the plugin calls the runtime (plugin is the ttrpc client).
pub const RUNTIME_SERVICE_CONN: u32 = 2;

pub const HEADER_LEN: usize = 8;
/// NRI v0.6.1 refuses to send or accept payloads above 16 MiB; anything larger is a broken
/// or hostile peer, and reading it would let the peer make us allocate without bound.
pub const MAX_PAYLOAD: usize = 1 << 24;
/// What we put in one outgoing frame. Small enough that both old (no splitting) and new
/// (splitting at 4 MiB) runtimes accept it.
const WRITE_CHUNK: usize = 64 * 1024;
/// Buffer between the mux and each logical stream.
const PIPE_CAPACITY: usize = 256 * 1024;

/// Why the multiplexed connection ended.
#[derive(Debug, thiserror::Error)]
pub enum MuxError {
    #[error("nri socket closed by the runtime")]
    Closed,
    #[error("nri socket i/o failed: {0}")]
    Io(#[from] io::Error),
    #[error("nri frame for conn {conn} announces {len} bytes, more than the {MAX_PAYLOAD} byte limit")]
    FrameTooLarge { conn: u32, len: usize },
}

/// The two logical streams of one NRI connection, plus the task that drives them.
pub struct Muxed {
    /// Conn 1: serve the NRI Plugin service on this.
    pub plugin_service: DuplexStream,
    /// Conn 2: call the NRI Runtime service on this.
    pub runtime_service: DuplexStream,
    /// Resolves when the underlying socket is closed or broken. Both logical streams see
    /// EOF at that point.
    pub done: tokio::task::JoinHandle<MuxError>,
}

/// Split `socket` into the NRI plugin and runtime logical connections.
pub fn split<S>(socket: S) -> Muxed
where
    S: AsyncRead + AsyncWrite + Send + 'static,
{
    let (plugin_app, plugin_mux) = tokio::io::duplex(PIPE_CAPACITY);
    let (runtime_app, runtime_mux) = tokio::io::duplex(PIPE_CAPACITY);
    let done = tokio::spawn(drive(socket, plugin_mux, runtime_mux));
    Muxed { plugin_service: plugin_app, runtime_service: runtime_app, done }
}

async fn drive<S>(socket: S, plugin: DuplexStream, runtime: DuplexStream) -> MuxError
where
    S: AsyncRead + AsyncWrite + Send + 'static,
{
    let (mut sock_rd, mut sock_wr) = tokio::io::split(socket);
    let (mut plugin_rd, mut plugin_wr) = tokio::io::split(plugin);
    let (mut runtime_rd, mut runtime_wr) = tokio::io::split(runtime);

    // One writer owns the socket's write half so frames from both streams never interleave.
    let (frames_tx, mut frames_rx) = mpsc::channel::<Vec<u8>>(64);
    let writer = async move {
        while let Some(frame) = frames_rx.recv().await {
            sock_wr.write_all(&frame).await?;
        }
        Ok::<(), io::Error>(())
    };
    let plugin_out = pump_out(PLUGIN_SERVICE_CONN, &mut plugin_rd, frames_tx.clone());
    let runtime_out = pump_out(RUNTIME_SERVICE_CONN, &mut runtime_rd, frames_tx);
    let reader = async {
        loop {
            let (conn, payload) = match read_frame(&mut sock_rd).await {
                Ok(frame) => frame,
                Err(e) => return e,
            };
            let sink = match conn {
                PLUGIN_SERVICE_CONN => &mut plugin_wr,
                RUNTIME_SERVICE_CONN => &mut runtime_wr,
                // Newer runtimes may open further conns; there is nobody to deliver to.
                other => {
                    tracing::debug!(conn = other, "dropping nri frame for unknown conn");
                    continue;
                }
            };
            // A local stream that was dropped just loses its bytes; the other keeps going.
            let _ = sink.write_all(&payload).await;
        }
    };
    tokio::select! {
        e = reader => e,
        r = writer => match r { Ok(()) => MuxError::Closed, Err(e) => MuxError::Io(e) },
        // Both local streams closed: nothing left to carry.
        _ = async { tokio::join!(plugin_out, runtime_out) } => MuxError::Closed,
    }
}

/// Copy whatever a local stream writes into frames for `conn`.
async fn pump_out<R: AsyncRead + Unpin>(conn: u32, rd: &mut R, frames: mpsc::Sender<Vec<u8>>) {
    let mut buf = vec![0u8; WRITE_CHUNK];
    loop {
        let n = match rd.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        if frames.send(encode_frame(conn, &buf[..n])).await.is_err() {
            return;
        }
    }
}

/// Encode one frame; `payload` must not exceed [`MAX_PAYLOAD`].
pub fn encode_frame(conn: u32, payload: &[u8]) -> Vec<u8> {
    debug_assert!(payload.len() <= MAX_PAYLOAD);
    let mut frame = Vec::with_capacity(HEADER_LEN + payload.len());
    frame.extend_from_slice(&conn.to_be_bytes());
    frame.extend_from_slice(&(payload.len() as u32).to_be_bytes());
    frame.extend_from_slice(payload);
    frame
}

/// Read one frame. EOF before a header is a clean close.
pub async fn read_frame<R: AsyncRead + Unpin>(rd: &mut R) -> Result<(u32, Vec<u8>), MuxError> {
    let mut header = [0u8; HEADER_LEN];
    match rd.read_exact(&mut header).await {
        Ok(_) => {}
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Err(MuxError::Closed),
        Err(e) => return Err(e.into()),
    }
    let (conn, len) = decode_header(&header)?;
    let mut payload = vec![0u8; len];
    rd.read_exact(&mut payload).await?;
    Ok((conn, payload))
}

/// Parse a frame header, refusing lengths above the protocol limit.
pub fn decode_header(header: &[u8; HEADER_LEN]) -> Result<(u32, usize), MuxError> {
    let conn = u32::from_be_bytes([header[0], header[1], header[2], header[3]]);
    let len = u32::from_be_bytes([header[4], header[5], header[6], header[7]]) as usize;
    if len > MAX_PAYLOAD {
        return Err(MuxError::FrameTooLarge { conn, len });
    }
    Ok((conn, len))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_roundtrip_is_big_endian() {
        let f = encode_frame(2, b"abc");
        assert_eq!(&f[..8], &[0, 0, 0, 2, 0, 0, 0, 3]);
        let (conn, len) = decode_header(f[..8].try_into().unwrap()).unwrap();
        assert_eq!((conn, len), (2, 3));
    }

    #[test]
    fn oversized_frame_is_refused_before_allocation() {
        let mut h = [0u8; 8];
        h[3] = 1;
        h[4..].copy_from_slice(&((MAX_PAYLOAD as u32) + 1).to_be_bytes());
        assert!(matches!(decode_header(&h), Err(MuxError::FrameTooLarge { conn: 1, .. })));
    }

    #[tokio::test]
    async fn streams_are_demultiplexed_and_frames_may_split_messages() {
        let (ours, mut theirs) = tokio::io::duplex(1 << 20);
        let mut m = split(ours);
        // The peer sends one logical message for conn 1 in two frames, interleaved with conn 2.
        theirs.write_all(&encode_frame(1, b"hel")).await.unwrap();
        theirs.write_all(&encode_frame(2, b"runtime")).await.unwrap();
        theirs.write_all(&encode_frame(1, b"lo")).await.unwrap();
        theirs.write_all(&encode_frame(7, b"ignored")).await.unwrap();
        let mut got = [0u8; 5];
        m.plugin_service.read_exact(&mut got).await.unwrap();
        assert_eq!(&got, b"hello");
        let mut got = [0u8; 7];
        m.runtime_service.read_exact(&mut got).await.unwrap();
        assert_eq!(&got, b"runtime");

        // Writes on a logical stream come out framed with its conn id.
        m.runtime_service.write_all(b"register").await.unwrap();
        let (conn, payload) = read_frame(&mut theirs).await.unwrap();
        assert_eq!((conn, payload.as_slice()), (2, &b"register"[..]));
    }

    #[tokio::test]
    async fn peer_close_ends_the_mux_and_both_streams() {
        let (ours, theirs) = tokio::io::duplex(1024);
        let mut m = split(ours);
        drop(theirs);
        assert!(matches!((&mut m.done).await.unwrap(), MuxError::Closed | MuxError::Io(_)));
        let mut buf = [0u8; 1];
        assert_eq!(m.plugin_service.read(&mut buf).await.unwrap(), 0);
    }

    #[tokio::test]
    async fn oversized_frame_from_peer_ends_the_mux() {
        let (ours, mut theirs) = tokio::io::duplex(1024);
        let m = split(ours);
        let mut h = Vec::new();
        h.extend_from_slice(&1u32.to_be_bytes());
        h.extend_from_slice(&u32::MAX.to_be_bytes());
        theirs.write_all(&h).await.unwrap();
        assert!(matches!(m.done.await.unwrap(), MuxError::FrameTooLarge { .. }));
    }
}
