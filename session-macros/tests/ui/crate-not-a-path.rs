use session_actix::SessionData;

#[derive(SessionData)]
#[session(crate = "not a path!")]
struct Cart {
    visits: u32,
}

fn main() {}
