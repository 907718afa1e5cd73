//! The ancestor's demo client (`test_ltprotocol.py client`): connects to 127.0.0.1:9999,
//! reconnecting by itself whenever the server goes away, and prints each message it gets:
//! `client got: 200`, `client got: hello world!`, `client got: 7`.
//!
//! Run: `cargo run -p ltprotocol --example demo_client [ADDR]` with the demo server running.

use std::time::Duration;

use ltprotocol::demo::Demo;
use ltprotocol::{
    ConnectionHandle, DisconnectReason, Handler, HeaderFields, HeaderLayout, ReconnectingClient,
};

struct DemoClient;

impl Handler<Demo> for DemoClient {
    async fn connected(&self, conn: &ConnectionHandle) {
        println!("client: connected to {conn}");
    }

    async fn message(&self, _conn: &ConnectionHandle, msg: Demo, _fields: &HeaderFields) {
        println!("client got: {msg}");
    }

    async fn disconnected(&self, _conn: &ConnectionHandle, reason: &DisconnectReason) {
        println!(
            "client: disconnected ({}); reconnecting",
            ltprotocol::error_chain(reason)
        );
    }

    async fn connect_failed(
        &self,
        attempt: u32,
        error: &std::io::Error,
        retry_in: Option<Duration>,
    ) {
        println!("client: attempt {attempt} failed ({error}); next in {retry_in:?}");
    }
}

#[tokio::main]
async fn main() {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_writer(std::io::stderr)
        .init();
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:9999".into());
    let client = ReconnectingClient::<Demo>::builder(HeaderLayout::ltprotocol())
        .connect_with_handler(addr, DemoClient);
    let _ = tokio::signal::ctrl_c().await;
    client.close(Duration::from_secs(2)).await;
}
