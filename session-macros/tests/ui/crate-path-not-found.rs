// The generated code names session-actix by the given path: one that does
// not resolve is reported at the string that gave it.
use session_actix::SessionData;

#[derive(SessionData)]
#[session(crate = "nowhere::session_actix")]
struct Cart {
    visits: u32,
}

fn main() {}
