use session_actix::SessionData;

#[derive(SessionData)]
struct Cart {
    #[session(default = "missing_fn")]
    visits: u32,
}

fn main() {}
