use session_actix::SessionData;

#[derive(SessionData)]
#[session(rename_all = "camel")]
struct Cart {
    user_id: u64,
}

fn main() {}
