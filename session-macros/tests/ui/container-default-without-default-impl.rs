use session_actix::SessionData;

#[derive(SessionData)]
#[session(default)]
struct Prefs {
    dark_mode: bool,
    page_size: u32,
}

fn main() {}
