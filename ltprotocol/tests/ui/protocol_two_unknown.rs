use ltprotocol::{Protocol, Unknown};

#[derive(Protocol)]
enum Demo {
    #[ltp(unknown)]
    First(Unknown),
    #[ltp(unknown)]
    Second(Unknown),
}

fn main() {}
