//! The ancestor's demo server (`test_ltprotocol.py server`): listens on 127.0.0.1:9999 and,
//! when a client connects, sends it `NumMsg(200)`, `StrMsg("hello world!")` and `NumMsg(7)`,
//! then again every second while it stays connected; prints what clients send.
//!
//! Run: `cargo run -p ltprotocol --example demo_server [ADDR]`, then the demo client.

use std::time::Duration;

use ltprotocol::demo::{Demo, NumMsg, StrMsg};
use ltprotocol::{ConnectionHandle, DisconnectReason, Handler, HeaderFields, HeaderLayout, Server};

struct DemoServer;

impl Handler<Demo> for DemoServer {
    async fn connected(&self, conn: &ConnectionHandle) {
        println!("server: {conn} connected");
        let conn = conn.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(1));
            loop {
                tick.tick().await;
                let sent = async {
                    conn.send(&NumMsg { num: 200 }).await?;
                    conn.send(&StrMsg {
                        str: "hello world!".into(),
                    })
                    .await?;
                    conn.send(&NumMsg { num: 7 }).await
                };
                if sent.await.is_err() {
                    break;
                }
            }
        });
    }

    async fn message(&self, _conn: &ConnectionHandle, msg: Demo, _fields: &HeaderFields) {
        println!("server got: {msg}");
    }

    async fn disconnected(&self, conn: &ConnectionHandle, reason: &DisconnectReason) {
        println!(
            "server: {conn} disconnected ({})",
            ltprotocol::error_chain(reason)
        );
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
    let server = Server::<Demo>::builder(HeaderLayout::ltprotocol())
        .bind(&addr)
        .await?;
    println!("server: listening on {}", server.local_addr());
    let serving = server.clone();
    tokio::spawn(async move { serving.serve(DemoServer).await });
    tokio::signal::ctrl_c().await?;
    let report = server.shutdown(Duration::from_secs(5)).await;
    println!("server: shut down ({report:?})");
    Ok(())
}
