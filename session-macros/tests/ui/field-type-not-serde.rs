use session_actix::SessionData;

struct NotSerde;

#[derive(SessionData)]
struct Cart {
    thing: Option<NotSerde>,
}

fn main() {}
