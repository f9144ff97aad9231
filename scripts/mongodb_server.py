#!/usr/bin/env python3
"""A MongoDB-compatible server for the tests: SecantusDB, in memory.

Debian ships no MongoDB, so scripts/services.sh installs SecantusDB from
PyPI into a virtualenv and runs this launcher in the background:

    python scripts/mongodb_server.py [--host 127.0.0.1] [--port 27017]

SecantusDB's own command line does not pass the TTL sweep interval through,
so this builds the server itself: data in memory, no replica set (a plain
standalone server, as `directConnection=true` expects), and expired
documents swept every second, so a TTL index acts about as promptly as
mongod's (which sweeps every 60 s; the store also filters expired documents
itself on every read).
"""

import argparse
import signal
import sys

from secantus.server import SecantusDBServer


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=27017)
    args = parser.parse_args()

    server = SecantusDBServer(
        host=args.host,
        port=args.port,
        storage_path=":memory:",
        replica_set_name=None,
        ttl_sweep_seconds=1.0,
        # The default closes a connection idle for 5 minutes, which a
        # driver's pooled connections may well be between test runs.
        client_idle_timeout_s=24 * 3600.0,
    )
    server.start()
    print(f"mongodb_server: SecantusDB listening on {server.uri}", flush=True)

    def stop(_signum, _frame):
        server.stop()
        sys.exit(0)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    server.wait()
    return 0


if __name__ == "__main__":
    sys.exit(main())
