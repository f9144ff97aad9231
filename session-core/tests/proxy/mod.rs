//! A TCP proxy that can stall: it stops forwarding, both ways, while both
//! sides' sockets stay open, as a NAT or a firewall does when it drops an
//! idle connection without a reset. Nothing tells either side; only a
//! deadline can.

use std::net::SocketAddr;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// Forwards every connection made to [`address`](Self::address) to one
/// server, until [`stall`](Self::stall)ed. Dropping it closes everything.
pub(crate) struct Proxy {
    address: SocketAddr,
    /// True while stalled; dropped with the proxy, which ends every
    /// connection's tasks.
    stalled: watch::Sender<bool>,
    accept: JoinHandle<()>,
}

impl Proxy {
    /// A proxy to `server` on a free loopback port.
    pub(crate) async fn start(server: &str) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("a free loopback port");
        let address = listener.local_addr().unwrap();
        let server: SocketAddr = server.parse().expect("an address");
        let (stalled, flowing) = watch::channel(false);
        let accept = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let flowing = flowing.clone();
                tokio::spawn(async move {
                    let Ok(upstream) = TcpStream::connect(server).await else {
                        return;
                    };
                    let (client_read, client_write) = client.into_split();
                    let (server_read, server_write) = upstream.into_split();
                    tokio::spawn(forward(client_read, server_write, flowing.clone()));
                    tokio::spawn(forward(server_read, client_write, flowing));
                });
            }
        });
        Self {
            address,
            stalled,
            accept,
        }
    }

    /// Where clients connect.
    pub(crate) fn address(&self) -> SocketAddr {
        self.address
    }

    /// Stops forwarding, on the connections open now and on new ones
    /// (accepted, and held), keeping every socket open.
    pub(crate) fn stall(&self) {
        self.stalled.send_replace(true);
    }

    /// Forwards again: what was held first.
    pub(crate) fn resume(&self) {
        self.stalled.send_replace(false);
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.accept.abort();
    }
}

/// Copies `from` to `to` while the proxy is not stalled; ends when either
/// side closes or the proxy is dropped.
async fn forward(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    mut flowing: watch::Receiver<bool>,
) {
    let mut buf = vec![0; 16 * 1024];
    loop {
        // Stalled: read nothing (the sender's kernel buffers fill up, as
        // with a peer that is gone), and keep the sockets.
        if flowing.wait_for(|stalled| !stalled).await.is_err() {
            return;
        }
        let n = tokio::select! {
            read = from.read(&mut buf) => match read {
                Ok(0) | Err(_) => {
                    let _ = to.shutdown().await;
                    return;
                }
                Ok(n) => n,
            },
            // Stalled while waiting: what arrives now is held.
            open = async { flowing.wait_for(|stalled| *stalled).await.is_ok() } => {
                if !open {
                    return;
                }
                continue;
            }
        };
        // What was read just before a stall is held too.
        if flowing.wait_for(|stalled| !stalled).await.is_err()
            || to.write_all(&buf[..n]).await.is_err()
        {
            return;
        }
    }
}
