use ltprotocol::{Message, Protocol};

#[derive(Message)]
#[ltp(message_type = 1)]
struct NumMsg {
    num: u32,
}

#[derive(Protocol)]
enum Demo {
    Named {
        msg: NumMsg,
    },
    Two(NumMsg, NumMsg),
    Empty,
    #[ltp(unknown)]
    Other(Vec<u8>),
}

fn main() {}
