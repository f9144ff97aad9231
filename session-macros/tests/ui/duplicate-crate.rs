use session_actix::SessionData;

#[derive(SessionData)]
#[session(crate = "::session_actix")]
#[session(crate = "::session_actix")]
struct Cart {
    visits: u32,
}

fn main() {}
