use session_actix::SessionData;

#[derive(SessionData)]
struct Cart(Vec<String>, u32);

fn main() {}
