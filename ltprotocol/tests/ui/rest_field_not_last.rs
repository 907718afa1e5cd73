use ltprotocol::Message;

#[derive(Message)]
#[ltp(message_type = 2)]
struct StrMsg {
    text: String,
    checksum: u32,
}

#[derive(ltprotocol::Wire)]
struct Blob(bytes::Bytes, u8);

fn main() {}
