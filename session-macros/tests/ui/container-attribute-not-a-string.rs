use session_actix::SessionData;

#[derive(SessionData)]
#[session(prefix = 1)]
#[session(rename_all = camelCase)]
struct Cart {
    visits: u32,
}

fn main() {}
