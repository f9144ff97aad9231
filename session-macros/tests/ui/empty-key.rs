use session_actix::SessionData;

#[derive(SessionData)]
struct Cart {
    #[session(key = "")]
    lines: Vec<String>,
}

fn main() {}
