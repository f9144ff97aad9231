//! The HTTP acceptance suite, run against every built-in backend: the
//! in-process stores, and each store on the server `scripts/services.sh`
//! starts (a server that is down fails its tests).

/// Every server-side store makes the same promises.
macro_rules! server_side {
    ($($name:ident = $make:expr;)*) => {
        $(
            mod $name {
                session_tests::http_suite!(
                    make = $make,
                    merges_concurrent_writes = true,
                    revokes_cookies = true,
                );
            }
        )*
    };
}

server_side! {
    memory = session_tests::memory();
    memory_signed = session_tests::memory_signed();
    filesystem = session_tests::filesystem();
    redis = session_tests::redis();
    redis_near_cache = session_tests::redis_near_cache();
    redis_cluster = session_tests::redis_cluster();
    memcached = session_tests::memcached();
    postgres = session_tests::postgres();
    postgres_near_cache = session_tests::postgres_near_cache();
    mysql = session_tests::mysql();
    sqlite = session_tests::sqlite();
    mongodb = session_tests::mongodb();
}

/// The same promises with every value sealed at rest
/// (`SESSION_ENCRYPT_AT_REST=true`): sealing is in the cycle, not in the
/// stores, so every store runs it.
mod encrypted_at_rest {
    server_side! {
        memory = session_tests::encrypted(session_tests::memory());
        memory_signed = session_tests::encrypted(session_tests::memory_signed());
        filesystem = session_tests::encrypted(session_tests::filesystem());
        redis = session_tests::encrypted(session_tests::redis());
        redis_near_cache = session_tests::encrypted(session_tests::redis_near_cache());
        redis_cluster = session_tests::encrypted(session_tests::redis_cluster());
        memcached = session_tests::encrypted(session_tests::memcached());
        postgres = session_tests::encrypted(session_tests::postgres());
        postgres_near_cache = session_tests::encrypted(session_tests::postgres_near_cache());
        mysql = session_tests::encrypted(session_tests::mysql());
        sqlite = session_tests::encrypted(session_tests::sqlite());
        mongodb = session_tests::encrypted(session_tests::mongodb());
    }
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
