use serde::{Deserialize, Serialize};
use session_actix::SessionData;

#[derive(Serialize, Deserialize)]
struct Currency(String);

#[derive(SessionData)]
struct Cart {
    #[session(default)]
    currency: Currency,
}

fn main() {}
