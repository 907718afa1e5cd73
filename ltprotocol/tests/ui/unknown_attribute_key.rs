use ltprotocol::{Message, Protocol, Unknown, Wire};

#[derive(Message)]
#[ltp(mesage_type = 1)]
struct Typo {
    num: u32,
}

#[derive(Message)]
#[ltp(message_type = 2)]
struct BadField {
    #[ltp(endian = "big")]
    num: u32,
    #[ltp(byte_order = "middle")]
    flags: u16,
}

#[derive(Wire)]
#[ltp(message_type = 3)]
struct WireWithType {
    num: u32,
}

#[derive(Protocol)]
enum Demo {
    #[ltp(unknown = true)]
    Other(Unknown),
}

fn main() {}
