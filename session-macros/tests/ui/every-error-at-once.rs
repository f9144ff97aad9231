use session_actix::SessionData;

#[derive(SessionData)]
#[session(prefix = "a.", prefix = "b.")]
struct Cart {
    #[session(kee = "x")]
    lines: Vec<String>,
    #[session(key = "visits")]
    count: u32,
    visits: u32,
}

fn main() {}
