use session_actix::SessionData;

#[derive(SessionData)]
#[session(crate = 1)]
struct Cart {
    visits: u32,
}

fn main() {}
