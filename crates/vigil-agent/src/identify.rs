//! Answering identify requests on the agent's communication port
//! (protocol: [`vigil_proto::identify`]). The asking side is the server's
//! compliance sweep (`vigil-server`'s `compliance::identify`).

use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, Semaphore};
use vigil_proto::identify::{Request, Responder, MAX_REQUEST_BYTES};

/// Connections answered at once; more wait in the kernel's backlog.
const MAX_CONNECTIONS: usize = 256;
/// A client gets this long to send its request.
const READ_TIMEOUT: Duration = Duration::from_secs(5);

/// Serves identify requests until `shutdown` becomes true. The responder
/// (ids and key) is read from `responder` for each request, so enrollment
/// changes show at once.
pub async fn serve(
    listener: TcpListener,
    responder: watch::Receiver<Responder>,
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
                let me = responder.borrow().clone();
                tokio::spawn(async move {
                    answer_one(stream, &me).await;
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

/// Reads one request line (at most [`MAX_REQUEST_BYTES`]) and answers it;
/// anything else gets no answer.
async fn answer_one(mut stream: TcpStream, me: &Responder) {
    let mut line = Vec::with_capacity(MAX_REQUEST_BYTES);
    let mut reader = BufReader::new(&mut stream).take(MAX_REQUEST_BYTES as u64);
    let read = tokio::time::timeout(READ_TIMEOUT, reader.read_until(b'\n', &mut line)).await;
    if matches!(read, Ok(Ok(_))) && line.ends_with(b"\n") {
        if let Ok(request) = Request::parse(&line) {
            let _ = stream.write_all(&me.answer(&request).to_line()).await;
        }
    }
    let _ = stream.shutdown().await;
}

#[cfg(test)]
mod tests {
    use super::*;
    use vigil_proto::identify::{IdentifyKey, IdentifyReply, Nonce, REQUEST_V1};

    const CREDENTIAL: &str = "vga_AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8";

    /// Sends `request` and reads everything the listener answers.
    async fn exchange(addr: std::net::SocketAddr, request: &[u8]) -> Vec<u8> {
        let mut s = TcpStream::connect(addr).await.expect("connect");
        s.write_all(request).await.expect("write");
        // A reset after an unread request is no answer either.
        let mut out = Vec::new();
        let _ = s.read_to_end(&mut out).await;
        out
    }

    #[tokio::test]
    async fn answers_each_version_and_ignores_other_talk() {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let me = Responder::new("agent-1", "server-1", "0.1.0", CREDENTIAL);
        let key = IdentifyKey::from_credential(CREDENTIAL).expect("key");
        let (set_me, responder) = watch::channel(me.clone());
        let (stop, shutdown) = watch::channel(false);
        let server = tokio::spawn(serve(listener, responder, shutdown));

        // Version 2: the MAC of the request's nonce.
        let nonce = Nonce::from_bytes([9; 32]);
        let line = exchange(addr, &Request::V2(nonce).to_line()).await;
        let got = IdentifyReply::parse(&line).expect("reply");
        assert_eq!(
            (got.agent_id.as_str(), got.server_id.as_str()),
            ("agent-1", "server-1")
        );
        assert!(key.verify(&nonce, &got), "{got:?}");
        assert!(!key.verify(&Nonce::from_bytes([8; 32]), &got));

        // Version 1 (older servers): the ids, no MAC.
        let got = IdentifyReply::parse(&exchange(addr, REQUEST_V1).await).expect("reply");
        assert_eq!(got, me.answer(&Request::V1));
        assert_eq!(got.mac, None);

        // The reply follows changes (e.g. after re-enrollment).
        let moved = Responder {
            server_id: "server-2".into(),
            ..me
        };
        set_me.send(moved.clone()).expect("update");
        let line = exchange(addr, &Request::V2(nonce).to_line()).await;
        let got = IdentifyReply::parse(&line).expect("reply");
        assert_eq!(got, moved.answer(&Request::V2(nonce)));
        assert!(key.verify(&nonce, &got));

        // Anything else gets no answer.
        for other in [
            &b"GET / HTTP/1.0\r\n\r\n"[..],
            b"VIGIL-IDENTIFY 2 00\n",
            b"VIGIL-IDENTIFY 3\n",
            &[b'V'; 200][..],
        ] {
            assert!(exchange(addr, other).await.is_empty(), "{other:?}");
        }

        stop.send(true).expect("stop");
        server.await.expect("server task");
    }
}
