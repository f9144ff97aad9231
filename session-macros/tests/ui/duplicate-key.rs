use session_actix::SessionData;

#[derive(SessionData)]
struct Cart {
    items: Vec<String>,
    #[session(key = "items")]
    lines: Vec<String>,
}

fn main() {}
