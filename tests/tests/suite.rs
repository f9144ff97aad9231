//! The HTTP acceptance suite, run against every built-in backend.

mod memory {
    session_tests::http_suite!(
        make = session_tests::memory(),
        merges_concurrent_writes = true,
        revokes_cookies = true,
    );
}

mod memory_signed {
    session_tests::http_suite!(
        make = session_tests::memory_signed(),
        merges_concurrent_writes = true,
        revokes_cookies = true,
    );
}

mod filesystem {
    session_tests::http_suite!(
        make = session_tests::filesystem(),
        merges_concurrent_writes = true,
        revokes_cookies = true,
    );
}

// The cookie store keeps the session in the browser: it documents that it
// cannot merge concurrent writes, and that a logout (or renew, or clear)
// cannot revoke a copy of the cookie taken before it.
mod cookie {
    session_tests::http_suite!(
        make = session_tests::cookie(),
        merges_concurrent_writes = false,
        revokes_cookies = false,
    );
}
