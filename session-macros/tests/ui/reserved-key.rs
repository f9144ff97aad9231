use session_actix::SessionData;

#[derive(SessionData)]
struct Account {
    #[session(key = "_user")]
    owner: String,
    _lifetime: u64,
}

fn main() {}
