//! An echo server for any message of the default layout: every frame goes back to its sender
//! unchanged, type and body.
//!
//! Run: `cargo run -p ltprotocol --example echo [ADDR]` (default 127.0.0.1:9999).

use std::time::Duration;

use ltprotocol::{ConnectionHandle, Handler, HeaderFields, HeaderLayout, Server, Unknown};

struct Echo;

impl Handler<Unknown> for Echo {
    async fn message(&self, conn: &ConnectionHandle, msg: Unknown, fields: &HeaderFields) {
        // The only error is a closed connection, which ends this peer anyway.
        let _ = conn.send_with(&msg, fields).await;
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
    println!("echo: listening on {}", server.local_addr());
    let serving = server.clone();
    tokio::spawn(async move { serving.serve(Echo).await });
    tokio::signal::ctrl_c().await?;
    server.shutdown(Duration::from_secs(5)).await;
    Ok(())
}
