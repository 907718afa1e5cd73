//! A chat-style relay: every message from one client goes to all the others (encoded once per
//! message, whatever the number of clients). A client that cannot keep up is disconnected
//! rather than slowing the room.
//!
//! Run: `cargo run -p ltprotocol --example relay [ADDR]` (default 127.0.0.1:9999).

use std::time::Duration;

use ltprotocol::{
    ConnectionHandle, DisconnectReason, Handler, HeaderFields, HeaderLayout, Server, Unknown,
};

struct Relay {
    server: Server<Unknown>,
}

impl Handler<Unknown> for Relay {
    async fn connected(&self, conn: &ConnectionHandle) {
        println!("relay: {conn} joined ({} in the room)", self.server.len());
    }

    async fn message(&self, conn: &ConnectionHandle, msg: Unknown, fields: &HeaderFields) {
        // Encoded once, queued to every other client without waiting.
        if let Err(err) = self.server.broadcast_except_with(&msg, fields, conn.id()) {
            eprintln!("relay: cannot relay from {conn}: {err}");
        }
    }

    async fn disconnected(&self, conn: &ConnectionHandle, reason: &DisconnectReason) {
        println!("relay: {conn} left ({})", ltprotocol::error_chain(reason));
    }
}

#[tokio::main]
async fn main() -> std::io::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_writer(std::io::stderr)
        .init();
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:9999".into());
    let server = Server::<Unknown>::builder(HeaderLayout::ltprotocol())
        .bind(&addr)
        .await?;
    println!("relay: listening on {}", server.local_addr());
    let relay = Relay {
        server: server.clone(),
    };
    let serving = server.clone();
    tokio::spawn(async move { serving.serve(relay).await });
    tokio::signal::ctrl_c().await?;
    server.shutdown(Duration::from_secs(5)).await;
    Ok(())
}
