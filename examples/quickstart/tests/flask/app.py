"""The Flask side of the interop tests: Flask 3.1 with Flask-Session 0.8.

Started by examples/quickstart/tests/flask.rs with the virtualenv that
scripts/services.sh makes, on the store the environment names:

    FLASK_STORE=redis|redis-cluster|redis-sentinel|memcached|sql|mongodb
    FLASK_STORE_URL=<the store's address>   (sql: an SQLAlchemy URL)
    FLASK_SQL_TABLE, FLASK_PORT, SECRET_KEY, SESSION_USE_SIGNER=1|0,
    FLASK_KEY_PREFIX (Flask-Session's SESSION_KEY_PREFIX, `session:` by default)

Its routes mirror the quickstart's, so that one cookie jar can drive both.
"""

import datetime
import os
import warnings

from flask import Flask, abort, request, session
from flask_session import Session

warnings.simplefilter("ignore", DeprecationWarning)  # SESSION_USE_SIGNER

app = Flask(__name__)
app.config["SECRET_KEY"] = os.environ["SECRET_KEY"]
app.config["SESSION_USE_SIGNER"] = os.environ.get("SESSION_USE_SIGNER") == "1"
app.config["SESSION_SERIALIZATION_FORMAT"] = os.environ.get("FLASK_FORMAT", "msgpack")
app.config["PERMANENT_SESSION_LIFETIME"] = datetime.timedelta(days=31)
app.config["SESSION_KEY_PREFIX"] = os.environ.get("FLASK_KEY_PREFIX", "session:")

store = os.environ["FLASK_STORE"]
url = os.environ.get("FLASK_STORE_URL", "")
if store == "redis":
    import redis

    app.config["SESSION_TYPE"] = "redis"
    app.config["SESSION_REDIS"] = redis.Redis.from_url(url)
elif store == "redis-cluster":
    import redis
    from redis.cluster import ClusterNode, RedisCluster

    class ClusterSessions(redis.Redis):
        """Flask-Session 0.8 takes a `redis.Redis` only (anything else,
        `RedisCluster` included, is replaced by a client of localhost:6379):
        this one is, and sends the three calls it makes to the cluster."""

        def __init__(self, cluster):
            self.cluster = cluster

        def get(self, name):
            return self.cluster.get(name)

        def set(self, name, value, ex=None):
            return self.cluster.set(name, value, ex=ex)

        def delete(self, *names):
            return self.cluster.delete(*names)

    host, port = url.split(":")
    app.config["SESSION_TYPE"] = "redis"
    app.config["SESSION_REDIS"] = ClusterSessions(
        RedisCluster(startup_nodes=[ClusterNode(host, int(port))])
    )
elif store == "redis-sentinel":
    from redis.sentinel import Sentinel

    host, port = url.split(":")
    app.config["SESSION_TYPE"] = "redis"
    app.config["SESSION_REDIS"] = Sentinel([(host, int(port))]).master_for("mymaster")
elif store == "memcached":
    from pymemcache.client.base import Client

    host, port = url.split(":")
    app.config["SESSION_TYPE"] = "memcached"
    # pymemcache's default sends writes without waiting for memcached
    # (noreply): the response could then reach the browser, and its next
    # request the other app, before the session is stored.
    app.config["SESSION_MEMCACHED"] = Client((host, int(port)), default_noreply=False)
elif store == "sql":
    from flask_sqlalchemy import SQLAlchemy

    app.config["SQLALCHEMY_DATABASE_URI"] = url
    app.config["SESSION_TYPE"] = "sqlalchemy"
    app.config["SESSION_SQLALCHEMY"] = SQLAlchemy(app)
    app.config["SESSION_SQLALCHEMY_TABLE"] = os.environ["FLASK_SQL_TABLE"]
elif store == "mongodb":
    from pymongo import MongoClient

    app.config["SESSION_TYPE"] = "mongodb"
    app.config["SESSION_MONGODB"] = MongoClient(url, directConnection=True)
    app.config["SESSION_MONGODB_DB"] = os.environ["FLASK_MONGODB_DB"]
else:
    raise SystemExit(f"unknown FLASK_STORE {store!r}")

Session(app)


@app.route("/set", methods=["GET", "POST"])
def set_value():
    session[request.args["key"]] = request.args["value"]
    if request.args.get("permanent") == "false":
        session.permanent = False
    return "ok"


@app.route("/get")
def get_value():
    value = session.get(request.args["key"])
    if value is None:
        abort(404)
    return str(value)


@app.route("/visits", methods=["GET", "POST"])
def visits():
    session["visits"] = session.get("visits", 0) + 1
    return str(session["visits"])


@app.route("/types", methods=["POST"])
def types():
    """Values of every kind Flask-Session stores, for the byte-for-byte test."""
    session["types"] = {
        "bytes": b"\x00\xffraw",
        "float": 1.1,
        "big": 2**62 + 1,
        "negative": -(2**40),
        "none": None,
        "list": [1, "two", 3.0, [True, False]],
        "int_keys": {1: "one", 2: "two"},
        "when": datetime.datetime(2026, 11, 26, 12, 30, 15, 123456, tzinfo=datetime.timezone.utc),
        "empty": {},
    }
    return "ok"


@app.route("/logout", methods=["POST"])
def logout():
    session.clear()
    return "ok"


@app.route("/whoami")
def whoami():
    """The keys of the session, so a test sees what Flask read."""
    return ",".join(sorted(k for k in session.keys() if not k.startswith("_")))


if __name__ == "__main__":
    app.run(host="127.0.0.1", port=int(os.environ["FLASK_PORT"]), threaded=True)
