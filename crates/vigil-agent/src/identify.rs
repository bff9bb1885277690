//! Answering identify requests on the agent's communication port
//! (protocol: [`vigil_proto::identify`]).

use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, Semaphore};
use vigil_proto::identify::{IdentifyReply, REQUEST};

/// Connections answered at once; more wait in the kernel's backlog.
const MAX_CONNECTIONS: usize = 256;
/// A client gets this long to send its request.
const READ_TIMEOUT: Duration = Duration::from_secs(5);

/// Serves identify requests until `shutdown` becomes true. The reply is
/// read from `reply` for each request, so enrollment changes show at once.
pub async fn serve(
    listener: TcpListener,
    reply: watch::Receiver<IdentifyReply>,
    mut shutdown: watch::Receiver<bool>,
) {
    let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    loop {
        let permit = tokio::select! {
            p = slots.clone().acquire_owned() => match p {
                Ok(p) => p,
                Err(_) => return,
            },
            _ = shutdown.wait_for(|stop| *stop) => return,
        };
        let conn = tokio::select! {
            c = listener.accept() => c,
            _ = shutdown.wait_for(|stop| *stop) => return,
        };
        match conn {
            Ok((stream, _)) => {
                let answer = reply.borrow().to_line();
                tokio::spawn(async move {
                    answer_one(stream, &answer).await;
                    drop(permit);
                });
            }
            Err(e) => {
                // EMFILE and friends: back off instead of spinning.
                tracing::warn!(error = %e, "identify listener: accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

async fn answer_one(mut stream: TcpStream, answer: &[u8]) {
    let mut buf = [0u8; REQUEST.len()];
    let read = tokio::time::timeout(READ_TIMEOUT, stream.read_exact(&mut buf)).await;
    if matches!(read, Ok(Ok(_))) && buf == REQUEST {
        let _ = stream.write_all(answer).await;
    }
    let _ = stream.shutdown().await;
}

/// Asks `addr` who it is (the compliance sweep's side of the protocol).
pub async fn ask(
    addr: std::net::SocketAddr,
    timeout: Duration,
) -> Result<IdentifyReply, IdentifyError> {
    let exchange = async {
        let mut stream = TcpStream::connect(addr).await?;
        // A service that is not an agent may talk first and hang up, so
        // neither a failed write nor a reset after some bytes is final:
        // whatever arrived is judged by its content.
        let _ = stream.write_all(REQUEST).await;
        let mut reply = Vec::new();
        let limit = vigil_proto::identify::MAX_REPLY_BYTES as u64 + 1;
        match (&mut stream).take(limit).read_to_end(&mut reply).await {
            Err(e) if reply.is_empty() => Err(e),
            _ => Ok(reply),
        }
    };
    let reply = tokio::time::timeout(timeout, exchange)
        .await
        .map_err(|_| IdentifyError::Timeout)?
        .map_err(IdentifyError::Io)?;
    IdentifyReply::parse(&reply).map_err(IdentifyError::NotAnAgent)
}

#[derive(Debug, thiserror::Error)]
pub enum IdentifyError {
    #[error("no answer in time")]
    Timeout,
    #[error("connection failed: {0}")]
    Io(#[source] std::io::Error),
    #[error("{0}")]
    NotAnAgent(#[source] vigil_proto::ProtoError),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn answers_the_request_and_ignores_other_talk() {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let me = IdentifyReply {
            agent_id: "agent-1".into(),
            server_id: "server-1".into(),
            version: "0.1.0".into(),
        };
        let (set_reply, reply) = watch::channel(me.clone());
        let (stop, shutdown) = watch::channel(false);
        let server = tokio::spawn(serve(listener, reply, shutdown));

        let got = ask(addr, Duration::from_secs(2)).await.expect("identify");
        assert_eq!(got, me);

        // The reply follows changes (e.g. after re-enrollment).
        let moved = IdentifyReply {
            server_id: "server-2".into(),
            ..me
        };
        set_reply.send(moved.clone()).expect("update");
        assert_eq!(
            ask(addr, Duration::from_secs(2)).await.expect("identify"),
            moved
        );

        // Anything else gets no answer.
        let mut s = TcpStream::connect(addr).await.expect("connect");
        s.write_all(b"GET / HTTP/1.0\r\n\r\n").await.expect("write");
        let mut out = Vec::new();
        s.read_to_end(&mut out).await.expect("read");
        assert!(out.is_empty());

        stop.send(true).expect("stop");
        server.await.expect("server task");
    }

    #[tokio::test]
    async fn a_non_agent_port_is_not_an_agent() {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        tokio::spawn(async move {
            if let Ok((mut s, _)) = listener.accept().await {
                // Like sshd: greet, read the peer's line, hang up.
                let _ = s.write_all(b"SSH-2.0-OpenSSH_9.2\r\n").await;
                let mut line = [0u8; 64];
                let _ = s.read(&mut line).await;
            }
        });
        assert!(matches!(
            ask(addr, Duration::from_secs(2)).await,
            Err(IdentifyError::NotAnAgent(_))
        ));
    }
}
