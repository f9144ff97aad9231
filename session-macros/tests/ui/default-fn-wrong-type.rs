use session_actix::SessionData;

#[derive(SessionData)]
struct Cart {
    #[session(default = "one")]
    visits: u32,
}

fn one() -> u64 {
    1
}

fn main() {}
