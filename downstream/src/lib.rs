//! A crate as a user writes one: it depends on `ltprotocol` with its default features only
//! (build it alone, `cargo build -p ltprotocol-downstream`, so that no other member's features
//! are added) and compiles README's example ("The library in a few lines"). `tests/readme.rs`
//! checks that the example here is README's, line for line. Not published.
#![allow(
    unreachable_pub,
    reason = "README's example declares its messages `pub`, as a user's module would"
)]

/// README's example, as written there, in a function that returns its errors.
///
/// # Errors
///
/// Binding 127.0.0.1:9999 fails when the port is taken; serving fails when accepting does.
#[rustfmt::skip] // README's text, as it is there.
pub async fn readme_example() -> Result<(), Box<dyn std::error::Error>> {
    use ltprotocol::{ConnectionHandle, Handler, HeaderFields, HeaderLayout, Message, Protocol, Server, Unknown};

    #[derive(Debug, Message)]
    #[ltp(message_type = 1)]
    pub struct NumMsg { pub num: u32 }

    #[derive(Debug, Message)]
    #[ltp(message_type = 2)]
    pub struct StrMsg { pub str: String }          // a trailing string fills the body

    #[derive(Debug, Protocol)]
    pub enum Demo { Num(NumMsg), Str(StrMsg), #[ltp(unknown)] Other(Unknown) }

    struct Greeter;

    impl Handler<Demo> for Greeter {
        async fn message(&self, conn: &ConnectionHandle, msg: Demo, _fields: &HeaderFields) {
            match msg {
                Demo::Num(NumMsg { num }) => println!("{conn} sent {num}"),
                Demo::Str(StrMsg { str }) => {
                    // Waits while this connection's outbox is full; fails once it is closed.
                    let _ = conn.send(&StrMsg { str: format!("hello, {str}") }).await;
                }
                Demo::Other(unknown) => println!("{conn} sent type {}", unknown.message_type),
            }
        }
    }

    let server = Server::<Demo>::builder(HeaderLayout::ltprotocol()).bind("127.0.0.1:9999").await?;
    server.serve(Greeter).await?;
    Ok(())
}
