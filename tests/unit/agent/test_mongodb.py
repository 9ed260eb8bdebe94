"""MongoDB: the command documents the provider sends, over the wire to a mockupdb fake.

No MongoDB server runs here. mockupdb speaks the wire protocol (pymongo 4.20 connects to it
unauthenticated), and a small in-memory user table answers the user-management commands.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from mockupdb import Matcher, MockupDB
from pymongo import MongoClient

from sikker.engines.base import Connection, ProviderError, UnsupportedStrategy
from sikker.engines.mongodb import MongoProvider

Document = dict[str, Any]


class FakeMongo:
    def __init__(self, server: MockupDB) -> None:
        self.users: dict[str, Document] = {}
        self.commands: list[tuple[str, Document]] = []  # (database, command document)
        self.refuse_login = False
        self.server = server
        # Matching by command name does not fire with pymongo 4.20's OP_MSG; match all instead.
        server.autoresponds(Matcher(), self.handle)

    def handle(self, request: Any) -> bool:
        doc = {k: v for k, v in request.doc.items() if not k.startswith("$") and k != "lsid"}
        name = next(iter(doc))
        if name in ("hello", "isMaster", "ismaster"):
            return False
        if name == "endSessions":
            return bool(request.ok())
        self.commands.append((request.doc["$db"], doc))
        if name == "ping":
            if self.refuse_login:
                return bool(request.command_err(code=18, errmsg="Authentication failed."))
            return bool(request.ok())
        if name == "usersInfo":
            found = self.users.get(doc["usersInfo"]["user"]) if isinstance(doc["usersInfo"], dict) else None
            return bool(request.ok(users=[found] if found else []))
        if name == "createUser":
            self.users[doc["createUser"]] = {"user": doc["createUser"], "roles": doc["roles"]}
        elif name == "updateUser" and "roles" in doc:
            self.users[doc["updateUser"]]["roles"] = doc["roles"]
        return bool(request.ok())

    def sent(self, name: str) -> list[Document]:
        return [doc for _, doc in self.commands if name in doc]


@pytest.fixture(scope="module")
def mongo_server() -> Iterator[FakeMongo]:
    server = MockupDB(auto_ismaster={"maxWireVersion": 21, "minWireVersion": 0})
    fake = FakeMongo(server)
    server.autoresponds("hello", maxWireVersion=21, minWireVersion=0, isWritablePrimary=True)
    server.run()
    try:
        yield fake
    finally:
        server.stop()  # takes a second: one server for the module


@pytest.fixture
def mongo(mongo_server: FakeMongo) -> FakeMongo:
    mongo_server.users.clear()
    mongo_server.commands.clear()
    mongo_server.refuse_login = False
    return mongo_server


def provider_for(mongo: FakeMongo, database: str = "shop") -> MongoProvider:
    def open_client(username: str, password: str, auth_source: str) -> MongoClient[Document]:
        return MongoClient(mongo.server.uri, directConnection=True, serverSelectionTimeoutMS=5000)

    return MongoProvider(Connection("db", 27017, database, "root", "adm"), open_client)


def test_single_creates_a_missing_user_with_read_write_on_the_database(mongo: FakeMongo) -> None:
    provider_for(mongo).apply("single", 'a"; db.dropDatabase(); //', "p'w$\\{}", "app")
    (create,) = mongo.sent("createUser")
    assert create == {
        "createUser": 'a"; db.dropDatabase(); //',
        "pwd": "p'w$\\{}",
        "roles": [{"role": "readWrite", "db": "shop"}],
    }
    assert all(db == "shop" for db, doc in mongo.commands if "createUser" in doc)


def test_single_updates_an_existing_user_password_only(mongo: FakeMongo) -> None:
    mongo.users["app"] = {"user": "app", "roles": [{"role": "read", "db": "shop"}]}
    provider_for(mongo).apply("single", "app", "new", "app")
    assert mongo.sent("updateUser") == [{"updateUser": "app", "pwd": "new"}]


def test_alternating_copies_the_base_users_roles(mongo: FakeMongo) -> None:
    roles = [{"role": "read", "db": "shop"}, {"role": "audit", "db": "admin"}]
    mongo.users["app"] = {"user": "app", "roles": roles}
    provider_for(mongo).apply("alternating", "app_b", "pw2", "app")
    assert mongo.sent("createUser") == [{"createUser": "app_b", "pwd": "pw2", "roles": roles}]
    provider_for(mongo).apply("alternating", "app_b", "pw3", "app")
    assert mongo.sent("updateUser") == [{"updateUser": "app_b", "pwd": "pw3", "roles": roles}]


def test_alternating_without_base_user_fails(mongo: FakeMongo) -> None:
    with pytest.raises(ProviderError, match="base user 'app' does not exist"):
        provider_for(mongo).apply("alternating", "app_b", "pw2", "app")


def test_disable_sets_an_unknown_password_and_kills_sessions(mongo: FakeMongo) -> None:
    mongo.users["app"] = {"user": "app", "roles": []}
    provider_for(mongo).disable("app")
    (update,) = mongo.sent("updateUser")
    assert update["updateUser"] == "app" and len(update["pwd"]) >= 48 and "roles" not in update
    assert (
        "admin",
        {"killAllSessionsByPattern": [{"users": [{"user": "app", "db": "shop"}]}]},
    ) in mongo.commands


def test_disable_of_a_missing_user_is_a_no_op(mongo: FakeMongo) -> None:
    provider_for(mongo).disable("ghost")
    assert mongo.sent("updateUser") == [] and mongo.sent("killAllSessionsByPattern") == []


def test_can_login_maps_authentication_failure_to_false(mongo: FakeMongo) -> None:
    assert provider_for(mongo).can_login("app", "pw") is True
    mongo.refuse_login = True
    assert provider_for(mongo).can_login("app", "pw") is False


def test_rollback_single_restores_the_live_password(mongo: FakeMongo) -> None:
    mongo.users["app"] = {"user": "app", "roles": []}
    provider_for(mongo).rollback("single", "app", "app", "old", "new")
    assert mongo.sent("updateUser") == [{"updateUser": "app", "pwd": "old"}]


def test_users_default_to_the_admin_database(mongo: FakeMongo) -> None:
    provider_for(mongo, database="").apply("single", "app", "pw", "app")
    assert [db for db, doc in mongo.commands if "createUser" in doc] == ["admin"]


def test_test_admin_pings_and_lists_users(mongo: FakeMongo) -> None:
    assert provider_for(mongo).test_admin() == []
    assert ("admin", {"ping": 1}) in mongo.commands and ("shop", {"usersInfo": 1}) in mongo.commands


def test_dual_is_unsupported(mongo: FakeMongo) -> None:
    with pytest.raises(UnsupportedStrategy):
        provider_for(mongo).apply("dual", "app", "pw", "app")


# -- dynamic secrets ---------------------------------------------------------------------------
def test_a_dynamic_user_gets_the_grant_role_on_the_database(mongo: FakeMongo) -> None:
    provider_for(mongo).create_user("sk_abc_x", "p'w\"$", "readWrite", 0)
    assert mongo.sent("createUser") == [
        {"createUser": "sk_abc_x", "pwd": "p'w\"$", "roles": [{"role": "readWrite", "db": "shop"}]}
    ]


def test_revoking_a_dynamic_user_locks_it_kills_its_sessions_then_drops_it(mongo: FakeMongo) -> None:
    mongo.users["sk_abc_x"] = {"user": "sk_abc_x", "roles": []}
    provider_for(mongo).revoke_user("sk_abc_x")
    names = [next(iter(doc)) for _, doc in mongo.commands if next(iter(doc)) != "usersInfo"]
    assert names == ["updateUser", "killAllSessionsByPattern", "dropUser"]
    assert mongo.sent("dropUser") == [{"dropUser": "sk_abc_x"}]


def test_revoking_a_missing_dynamic_user_is_done(mongo: FakeMongo) -> None:
    provider_for(mongo).revoke_user("sk_abc_gone")
    assert mongo.sent("dropUser") == []


def test_dynamic_users_are_listed_by_prefix(mongo: FakeMongo) -> None:
    assert provider_for(mongo).list_users("sk_abc_") == []
    assert mongo.sent("usersInfo") == [{"usersInfo": 1}]
