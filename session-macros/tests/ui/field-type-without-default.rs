use serde::{Deserialize, Serialize};
use session_actix::SessionData;

#[derive(Serialize, Deserialize)]
struct Currency(String);

// Without a `default` attribute, a missing key reads as the type's default.
#[derive(SessionData)]
struct Cart {
    currency: Currency,
}

fn main() {}
