use session_actix::SessionData;

#[derive(SessionData)]
struct Cart {
    #[session(key = "items", key = "lines")]
    lines: Vec<String>,
}

fn main() {}
