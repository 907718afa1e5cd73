//! `ltp demo`: the ancestor's example (`test_ltprotocol.py server|client`), in one process or
//! as its two halves.

use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use clap::{Args, Subcommand};
use tokio::sync::mpsc;

use ltprotocol::demo::{DEMO_PORT, Demo, NumMsg, StrMsg};
use ltprotocol::{
    Backoff, ConnectionHandle, DisconnectReason, Handler, HeaderFields, HeaderLayout,
    ReconnectingClient, Server,
};

use super::signals::Signals;
use crate::output::Stdout;

/// `ltp demo` options: `--rounds` for the demo in one process; `server` and `client` (which
/// run until interrupted) take their own options and not that one (see [`Self::misplaced`]).
#[derive(Debug, Args)]
pub(crate) struct DemoArgs {
    #[command(subcommand)]
    role: Option<Role>,
    /// Stop after the client has received this many rounds (NumMsg(200), StrMsg, NumMsg(7));
    /// the server is restarted halfway through. Default: 4.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    rounds: Option<u32>,
}

impl DemoArgs {
    /// Rounds when the demo runs in one process.
    const DEFAULT_ROUNDS: u32 = 4;

    /// Why these options do not go together, for a usage error: `--rounds` before `server` or
    /// `client` (after them, clap refuses it itself). `None` when they do.
    pub(crate) fn misplaced(&self) -> Option<String> {
        let role = match self.role.as_ref()? {
            Role::Server { .. } => "server",
            Role::Client { .. } => "client",
        };
        self.rounds.map(|_| {
            format!(
                "--rounds is for `ltp demo` in one process; `ltp demo {role}` runs until \
                 interrupted"
            )
        })
    }
}

#[derive(Debug, Subcommand)]
enum Role {
    /// Only the server, on port 9999 like the ancestor's (interoperates with it).
    Server {
        /// Address to listen on.
        #[arg(long, default_value_t = format!("127.0.0.1:{DEMO_PORT}"))]
        listen: String,
    },
    /// Only the client; runs until interrupted.
    Client {
        /// The server's address.
        #[arg(long, default_value_t = format!("127.0.0.1:{DEMO_PORT}"))]
        connect: String,
    },
}

/// Sends a round to each new client at once, then every second while it stays connected.
/// Its lines, like the client's, go through the stdout writer: they quote the peer (a
/// `StrMsg`'s text, a disconnect reason), so `say` escapes them, and a stalled stdout must
/// not block the runtime.
struct DemoServer {
    out: Stdout,
}

impl Handler<Demo> for DemoServer {
    async fn connected(&self, conn: &ConnectionHandle) {
        self.out.say(&format!("server: {conn} connected")).await;
        let conn = conn.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(1));
            loop {
                tick.tick().await;
                if send_round(&conn).await.is_err() {
                    break;
                }
            }
        });
    }

    async fn message(&self, _conn: &ConnectionHandle, msg: Demo, _fields: &HeaderFields) {
        self.out.say(&format!("server got: {msg}")).await;
    }

    async fn disconnected(&self, conn: &ConnectionHandle, reason: &DisconnectReason) {
        let reason = ltprotocol::error_chain(reason);
        self.out
            .say(&format!("server: {conn} disconnected ({reason})"))
            .await;
    }
}

async fn send_round(conn: &ConnectionHandle) -> Result<(), ltprotocol::SendError> {
    conn.send(&NumMsg { num: 200 }).await?;
    conn.send(&StrMsg {
        str: "hello world!".into(),
    })
    .await?;
    conn.send(&NumMsg { num: 7 }).await
}

/// Prints what arrives as the ancestor's client did; reports each completed round.
struct DemoClient {
    out: Stdout,
    rounds: mpsc::UnboundedSender<()>,
}

impl Handler<Demo> for DemoClient {
    async fn connected(&self, conn: &ConnectionHandle) {
        self.out.say(&format!("client: connected to {conn}")).await;
        // The ancestor's client only listened; saying hello shows the other direction too.
        let _ = conn
            .send(&StrMsg {
                str: "hello from the client".into(),
            })
            .await;
    }

    async fn message(&self, _conn: &ConnectionHandle, msg: Demo, _fields: &HeaderFields) {
        self.out.say(&format!("client got: {msg}")).await;
        if msg == Demo::Num(NumMsg { num: 7 }) {
            let _ = self.rounds.send(());
        }
    }

    async fn disconnected(&self, _conn: &ConnectionHandle, reason: &DisconnectReason) {
        let line = match reason {
            DisconnectReason::Closed => "client: closed".to_owned(),
            _ => format!(
                "client: disconnected ({}); reconnecting",
                ltprotocol::error_chain(reason)
            ),
        };
        self.out.say(&line).await;
    }

    async fn connect_failed(
        &self,
        attempt: u32,
        error: &std::io::Error,
        retry_in: Option<Duration>,
    ) {
        let line = match retry_in {
            Some(wait) => {
                format!("client: attempt {attempt} failed ({error}); retrying in {wait:.1?}")
            }
            None => format!("client: attempt {attempt} failed ({error}); giving up"),
        };
        self.out.say(&line).await;
    }
}

fn client_builder() -> ltprotocol::ClientBuilder<Demo> {
    let mut builder = ReconnectingClient::<Demo>::builder(HeaderLayout::ltprotocol());
    builder.backoff(Backoff {
        initial: Duration::from_millis(200),
        max: Duration::from_secs(5),
        ..Backoff::default()
    });
    builder
}

pub(crate) async fn run(args: DemoArgs, out: Stdout) -> anyhow::Result<ExitCode> {
    match args.role {
        Some(Role::Server { listen }) => {
            let mut signals = Signals::install().context("cannot catch SIGINT and SIGTERM")?;
            let server = bind(&listen, &out).await?;
            let serving = server.clone();
            tokio::spawn(async move { serving.serve(DemoServer { out }).await });
            signals.recv().await;
            server.shutdown(Duration::from_secs(5)).await;
            Ok(ExitCode::SUCCESS)
        }
        Some(Role::Client { connect }) => {
            let mut signals = Signals::install().context("cannot catch SIGINT and SIGTERM")?;
            let (rounds, _done) = mpsc::unbounded_channel();
            let client = client_builder().connect_with_handler(connect, DemoClient { out, rounds });
            signals.recv().await;
            client.close(Duration::from_secs(2)).await;
            Ok(ExitCode::SUCCESS)
        }
        None => together(args.rounds.unwrap_or(DemoArgs::DEFAULT_ROUNDS), out).await,
    }
}

async fn bind(addr: &str, out: &Stdout) -> anyhow::Result<Server<Demo>> {
    let server = Server::<Demo>::builder(HeaderLayout::ltprotocol())
        .bind(addr)
        .await
        .map_err(|err| anyhow::anyhow!("cannot listen on {addr}: {err}"))?;
    out.say(&format!("server: listening on {}", server.local_addr()))
        .await;
    Ok(server)
}

/// Server and client in one process; the server restarts halfway.
async fn together(rounds: u32, out: Stdout) -> anyhow::Result<ExitCode> {
    let mut server = bind("127.0.0.1:0", &out).await?;
    let addr = server.local_addr();
    let serving = server.clone();
    let server_out = out.clone();
    tokio::spawn(async move { serving.serve(DemoServer { out: server_out }).await });

    let (round_tx, mut round_rx) = mpsc::unbounded_channel();
    let client = client_builder().connect_with_handler(
        addr.to_string(),
        DemoClient {
            out: out.clone(),
            rounds: round_tx,
        },
    );
    let restart_after = rounds / 2;
    let deadline = Duration::from_secs(u64::from(rounds) * 3 + 10);
    let finished = tokio::time::timeout(deadline, async {
        for round in 1..=rounds {
            if round_rx.recv().await.is_none() {
                return false;
            }
            out.say(&format!("demo: round {round} of {rounds} received"))
                .await;
            if round == restart_after && round < rounds {
                out.say("demo: restarting the server").await;
                server.shutdown(Duration::from_secs(5)).await;
                server = match rebind(addr.clone(), &out).await {
                    Ok(server) => server,
                    Err(err) => {
                        out.say(&format!("demo: cannot restart the server: {err}"))
                            .await;
                        return false;
                    }
                };
                let serving = server.clone();
                let server_out = out.clone();
                tokio::spawn(async move { serving.serve(DemoServer { out: server_out }).await });
            }
        }
        true
    })
    .await;
    client.close(Duration::from_secs(2)).await;
    server.shutdown(Duration::from_secs(5)).await;
    match finished {
        Ok(true) => {
            out.say("demo: done").await;
            Ok(ExitCode::SUCCESS)
        }
        _ => {
            out.say(&format!(
                "demo: the client did not receive {rounds} rounds in {deadline:?}"
            ))
            .await;
            Ok(ExitCode::from(1))
        }
    }
}

/// Binds the same address again; the old socket may linger for a moment.
async fn rebind(addr: ltprotocol::Addr, out: &Stdout) -> anyhow::Result<Server<Demo>> {
    let mut last = None;
    for _ in 0..50 {
        match bind(&addr.to_string(), out).await {
            Ok(server) => return Ok(server),
            Err(err) => last = Some(err),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Err(last.unwrap_or_else(|| anyhow::anyhow!("cannot rebind {addr}")))
}
