use session_actix::SessionData;

#[derive(SessionData)]
struct Cart {
    #[session(skip, key = "cache")]
    cache: String,
}

fn main() {}
