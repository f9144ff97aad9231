use session_actix::SessionData;

#[derive(SessionData)]
struct Cart {
    #[session(default = 1)]
    visits: u32,
}

fn main() {}
