#[derive(ltprotocol::Wire)]
enum Flag {
    On,
    Off,
}

#[derive(ltprotocol::Message)]
#[ltp(message_type = 1)]
enum Msg {
    A,
}

fn main() {}
