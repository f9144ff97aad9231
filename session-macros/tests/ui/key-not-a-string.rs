use session_actix::SessionData;

#[derive(SessionData)]
struct Cart {
    #[session(key = 1)]
    visits: u32,
}

fn main() {}
