use session_actix::SessionData;

#[derive(SessionData)]
union Cart {
    count: u32,
    total: f32,
}

fn main() {}
