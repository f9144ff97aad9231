use session_actix::SessionData;

#[derive(SessionData)]
struct Cart {
    #[session(rename = "items")]
    lines: Vec<String>,
}

fn main() {}
