use ltprotocol::{Message, Protocol, Unknown};

const NUM: u8 = 1;

#[derive(Message)]
#[ltp(message_type = NUM)]
struct NumMsg {
    num: u32,
}

#[derive(Message)]
#[ltp(message_type = 1)]
struct StrMsg {
    text: String,
}

#[derive(Protocol)]
enum Demo {
    Num(NumMsg),
    Str(StrMsg),
    #[ltp(unknown)]
    Other(Unknown),
}

fn main() {}
