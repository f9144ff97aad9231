use session_actix::SessionData;

#[derive(SessionData)]
enum Cart {
    Empty,
    Full(Vec<String>),
}

fn main() {}
