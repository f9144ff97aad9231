use session_actix::SessionData;

#[derive(SessionData)]
struct Cart {
    lines: Vec<String>,
    set_lines: bool,
    save: bool,
}

fn main() {}
