use session_actix::SessionData;

#[derive(SessionData)]
#[session(deny_unknown_fields)]
struct Cart {
    lines: Vec<String>,
}

fn main() {}
