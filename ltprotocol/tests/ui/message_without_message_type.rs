use ltprotocol::Message;

#[derive(Message)]
#[ltp(name = "NUM")]
struct NumMsg {
    num: u32,
}

fn main() {}
