use session_actix::SessionData;

#[derive(SessionData)]
struct Cart<T> {
    lines: Vec<T>,
}

fn main() {}
