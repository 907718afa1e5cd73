use ltprotocol::{Message, Protocol};

#[derive(Message)]
#[ltp(message_type = 1)]
struct NumMsg {
    num: u32,
}

#[derive(Protocol)]
enum Demo {
    Num(NumMsg),
}

fn main() {}
