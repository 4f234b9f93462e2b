"""Accounts of the web platform on a real store: admins and invitations, logins and lockout, web sessions, API
tokens, deactivation; every write audited without a secret in the log; and the upgrade of a database made before
accounts existed. Tests taking `db_url` run on SQLite and PostgreSQL."""

from __future__ import annotations

import datetime as dt
import json
import re
from collections.abc import Iterator

import pytest
from sqlalchemy import select, text
from sqlalchemy.exc import IntegrityError

import simsa.accounts as accounts
from helpers import EXAMPLE
from simsa.accounts import LOCK_AFTER, LOCK_FOR, Role
from simsa.accounts import passwords as pw
from simsa.audit import log as audit_log
from simsa.errors import InputError
from simsa.program.loader import load_program
from simsa.services import programs
from simsa.store.db import Store, head_revision
from simsa.store.models import ROLES, Account, ApiToken, AuditEntry, Invitation, WebSession

T0 = dt.datetime(2026, 3, 2, 9, 0, tzinfo=dt.UTC)
ADMIN_PASSWORD = "correct horse battery"
PASSWORD = "a long enough secret"


@pytest.fixture(autouse=True)
def fast_hashing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(pw.FAST_ENV, "1")


@pytest.fixture
def store(db_url: str) -> Iterator[Store]:
    s = Store(db_url)
    yield s
    s.dispose()


def _admin(store: Store, username: str = "root") -> accounts.AccountView:
    with store.session() as s:
        return accounts.create_admin(s, username, ADMIN_PASSWORD, "Root Admin", actor="cli:tester", now=T0)


def _invited(store: Store, username: str = "kim", role: Role | str = Role.EXPERT, **kw: object
             ) -> tuple[accounts.AccountView, str]:
    with store.session() as s:
        return accounts.invite(s, username=username, display_name=f"{username.title()} Person", role=role,
                               actor="account:root", now=T0, **kw)  # type: ignore[arg-type]


def _member(store: Store, username: str = "kim") -> accounts.AccountView:
    """An invited account that accepted its invitation."""
    _, token = _invited(store, username)
    with store.session() as s:
        return accounts.accept_invitation(s, token, PASSWORD, now=T0 + dt.timedelta(hours=1))


def _login(store: Store, username: str, password: str, at: dt.datetime) -> accounts.LoginOutcome:
    with store.session() as s:
        return accounts.authenticate(s, username, password, now=at)


def _row(store: Store, account_id: int) -> Account:
    with store.session(readonly=True) as s:
        row = s.get(Account, account_id)
        assert row is not None
        return row


def _actions(store: Store) -> list[tuple[str, str, str]]:
    with store.session(readonly=True) as s:
        return [tuple(r) for r in s.execute(select(AuditEntry.actor, AuditEntry.action, AuditEntry.entity)
                                            .order_by(AuditEntry.seq))]


# --------------------------------------------------------------------------- the public surface


def test_the_roles_are_the_ones_the_schema_allows() -> None:
    assert tuple(r.value for r in Role) == ROLES
    assert accounts.parse_role(" Team ") is Role.TEAM
    with pytest.raises(InputError, match=r"unknown role 'judge' \(roles: admin, expert, rater, team, public\)"):
        accounts.parse_role("judge")
    assert set(accounts.__all__) <= set(dir(accounts))
    for name in accounts.__all__:
        assert getattr(accounts, name) is not None


# --------------------------------------------------------------------------- admins and logins


def test_an_admin_signs_in_and_the_login_is_recorded_on_the_account(store: Store) -> None:
    admin = _admin(store)
    assert (admin.role, admin.active, admin.activated, admin.display_name) == (Role.ADMIN, True, True, "Root Admin")
    assert admin.actor == "account:root"
    outcome = _login(store, "  ROOT ", ADMIN_PASSWORD, T0 + dt.timedelta(minutes=5))
    assert outcome.ok and outcome.refused is None and outcome.message == ""
    assert outcome.account is not None and outcome.account.last_login_at == T0 + dt.timedelta(minutes=5)
    row = _row(store, admin.id)
    assert row.password_hash is not None and row.password_hash.startswith("$argon2id$")
    assert ADMIN_PASSWORD not in row.password_hash
    data = outcome.account.to_dict()
    assert data["role"] == "admin" and data["last_login_at"] == "2026-03-02T09:05:00Z"
    assert not any("hash" in key or "password" in key for key in data)
    json.dumps(data)
    with store.session() as s, pytest.raises(InputError, match="username 'root' is taken"):
        accounts.create_admin(s, "Root", ADMIN_PASSWORD, actor="cli:tester")
    assert [a for _, a, _ in _actions(store)] == ["account.create"]  # logins are not audited


def test_a_wrong_password_is_counted_and_an_unknown_user_reads_the_same(store: Store) -> None:
    admin = _admin(store)
    wrong = _login(store, "root", "not the password", T0)
    unknown = _login(store, "nobody", "not the password", T0)
    invalid = _login(store, "x" * 500, "not the password", T0)
    assert wrong.refused == unknown.refused == invalid.refused == "bad_credentials"
    assert wrong.message == unknown.message == invalid.message == "the username or password is wrong"
    assert wrong.account is None
    assert _row(store, admin.id).failed_logins == 1
    _login(store, "root", "still not the password", T0)
    assert _row(store, admin.id).failed_logins == 2
    assert _login(store, "root", ADMIN_PASSWORD, T0).ok
    assert _row(store, admin.id).failed_logins == 0  # consecutive failures only


def test_an_invited_account_cannot_sign_in_before_accepting_and_says_nothing_more(store: Store) -> None:
    _invited(store, "kim")
    outcome = _login(store, "kim", "", T0)
    assert outcome.refused == "bad_credentials"  # not "not_activated": that would tell who has been invited


def test_failed_logins_lock_the_account_even_for_the_right_password_until_the_lock_ends(store: Store) -> None:
    admin = _admin(store)
    kim = _member(store)
    at = T0 + dt.timedelta(days=1)
    outcomes = [_login(store, "kim", f"guess number {i}", at + dt.timedelta(seconds=i)) for i in range(LOCK_AFTER)]
    assert [o.refused for o in outcomes] == ["bad_credentials"] * (LOCK_AFTER - 1) + ["locked"]
    locked_at = at + dt.timedelta(seconds=LOCK_AFTER - 1)
    assert _row(store, kim.id).locked_until == locked_at + LOCK_FOR
    right = _login(store, "kim", PASSWORD, locked_at + LOCK_FOR - dt.timedelta(seconds=1))
    assert right.refused == "locked" and "locked" in right.message and right.account is None
    # guesses while locked are not checked, so they neither extend the lock nor tell a right password from a wrong one
    _login(store, "kim", "another guess", locked_at + dt.timedelta(minutes=1))
    assert _row(store, kim.id).locked_until == locked_at + LOCK_FOR
    assert _login(store, "kim", PASSWORD, locked_at + LOCK_FOR).ok
    row = _row(store, kim.id)
    assert (row.failed_logins, row.locked_until) == (0, None)
    lock = [(actor, action) for actor, action, _ in _actions(store) if action == "account.lock"]
    assert lock == [("system", "account.lock")]
    # an administrator can lift a lock early
    for i in range(LOCK_AFTER):
        _login(store, "kim", f"guess {i}", at + dt.timedelta(hours=1))
    assert _login(store, "kim", PASSWORD, at + dt.timedelta(hours=1)).refused == "locked"
    with store.session() as s:
        view = accounts.unlock(s, kim.id, actor=admin.actor, now=at + dt.timedelta(hours=1))
    assert view.locked_until is None
    assert _login(store, "kim", PASSWORD, at + dt.timedelta(hours=1)).ok
    assert _actions(store)[-1] == ("account:root", "account.unlock", "account")


def test_a_deactivated_account_is_refused_only_once_the_password_is_right(store: Store) -> None:
    admin = _admin(store)
    kim = _member(store)
    with store.session() as s:
        accounts.set_active(s, kim.id, False, actor=admin.actor, now=T0)
    assert _login(store, "kim", "wrong password!", T0).refused == "bad_credentials"
    refused = _login(store, "kim", PASSWORD, T0)
    assert refused.refused == "inactive" and "deactivated" in refused.message


def test_a_hash_made_under_other_parameters_is_replaced_at_login(store: Store,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    admin = _admin(store)
    fast_hash = _row(store, admin.id).password_hash
    assert fast_hash is not None and "m=8192,t=1" in fast_hash
    monkeypatch.delenv(pw.FAST_ENV)  # the server's parameters (argon2-cffi's defaults)
    assert _login(store, "root", ADMIN_PASSWORD, T0).ok
    new_hash = _row(store, admin.id).password_hash
    assert new_hash is not None and new_hash != fast_hash and "m=8192,t=1" not in new_hash
    assert _login(store, "root", ADMIN_PASSWORD, T0).ok
    assert _row(store, admin.id).password_hash == new_hash  # rehashed once only


# --------------------------------------------------------------------------- invitations


def test_an_invitation_is_accepted_once(store: Store) -> None:
    view, token = _invited(store, "Lee.Team-1", Role.TEAM, program_key="k-ai-2026", team_id="baekdu",
                           teams=["baekdu", "halla"])
    assert (view.username, view.role, view.program_key, view.team_id) == ("lee.team-1", Role.TEAM, "k-ai-2026",
                                                                         "baekdu")
    assert (view.active, view.activated) == (True, False)
    assert len(token) >= 43
    with store.session(readonly=True) as s:
        assert accounts.invitation_account(s, token, now=T0 + dt.timedelta(days=1)).id == view.id
        stored = s.execute(select(Invitation)).scalar_one()
        assert stored.token_hash != token and len(stored.token_hash) == 64
    with store.session() as s, pytest.raises(InputError, match="too short"):
        accounts.accept_invitation(s, token, "short", now=T0)
    with store.session() as s:
        accepted = accounts.accept_invitation(s, token, PASSWORD, now=T0 + dt.timedelta(days=1))
    assert accepted.activated
    with store.session() as s, pytest.raises(InputError, match="this invitation was already used"):
        accounts.accept_invitation(s, token, "another long password", now=T0 + dt.timedelta(days=1))
    with store.session() as s, pytest.raises(InputError, match="this invitation was already used"):
        accounts.invitation_account(s, token, now=T0 + dt.timedelta(days=1))
    assert _login(store, "lee.team-1", PASSWORD, T0 + dt.timedelta(days=2)).ok
    assert _actions(store) == [("account:root", "account.create", "account"),
                               ("account:lee.team-1", "account.activate", "account")]


def test_an_expired_or_unknown_invitation_is_refused_and_a_new_one_replaces_the_old(store: Store) -> None:
    admin = _admin(store)
    view, first = _invited(store, "park")
    late = T0 + accounts.INVITATION_LIFETIME
    with store.session() as s, pytest.raises(InputError, match="this invitation has expired"):
        accounts.accept_invitation(s, first, PASSWORD, now=late)
    for bad in ("not-a-token", "", "x" * 1000):
        with store.session() as s, pytest.raises(InputError, match="this invitation is not valid"):
            accounts.invitation_account(s, bad, now=T0)
    with store.session() as s:
        second = accounts.reinvite(s, view.id, actor=admin.actor, now=T0 + dt.timedelta(days=1))
        third = accounts.reinvite(s, view.id, actor=admin.actor, now=T0 + dt.timedelta(days=2))
    assert len({first, second, third}) == 3
    with store.session() as s, pytest.raises(InputError, match="this invitation has expired"):
        accounts.accept_invitation(s, second, PASSWORD, now=T0 + dt.timedelta(days=2, hours=1))
    with store.session() as s:
        accounts.accept_invitation(s, third, PASSWORD, now=late + dt.timedelta(days=1))  # its own 7 days
    with store.session() as s, pytest.raises(InputError, match="already activated"):
        accounts.reinvite(s, view.id, actor=admin.actor)
    assert [a for _, a, _ in _actions(store)] == ["account.create", "account.create", "account.invite",
                                                   "account.invite", "account.activate"]


def test_invitations_check_usernames_roles_and_teams(store: Store) -> None:
    _invited(store, "kim")
    cases: list[tuple[dict, str]] = [
        ({"username": "ab"}, "invalid username 'ab'"),
        ({"username": "kim lee"}, "invalid username"),
        ({"username": "김철수"}, "invalid username"),
        ({"username": "x" * 65}, "invalid username"),
        ({"username": "KIM"}, "username 'kim' is taken"),
        ({"role": "owner"}, "unknown role 'owner'"),
        ({"role": "team"}, "a team account needs a programme and a team"),
        ({"role": "team", "program_key": "p"}, "a team account needs a programme and a team"),
        ({"role": "team", "program_key": "p", "team_id": "zz", "teams": ["a", "b"]},
         r"unknown team 'zz' in programme 'p' \(teams: a, b\)"),
        ({"role": "rater", "team_id": "a"}, "only team accounts belong to a team"),
        ({"display_name": "   "}, "a display name is required"),
        ({"lifetime": dt.timedelta(0)}, "lifetime must be positive"),
    ]
    for change, message in cases:
        args = {"username": "newcomer", "display_name": "New Comer", "role": "expert", **change}
        with store.session() as s, pytest.raises(InputError, match=message):
            accounts.invite(s, actor="account:root", now=T0, **args)
    with store.session() as s:
        rater, _ = accounts.invite(s, username="rater-1", display_name="Rater", role="rater", program_key="k-ai-2026",
                                   actor="account:root")
    assert (rater.role, rater.program_key, rater.team_id) == (Role.RATER, "k-ai-2026", None)


def test_the_password_policy(store: Store) -> None:
    for password, message in [("", "a password is required"), ("elevenchars", "too short.*at least 12"),
                              ("a" * 20, "one character repeated"), ("Someone.Long", "must not be the username"),
                              ("x" * 2000 + "y", "too long")]:
        with pytest.raises(InputError, match=message):
            pw.check_policy(password, "someone.long")
    with pytest.raises(InputError, match="must not be the username"):
        pw.check_policy("Someone.Long.Name", "someone.long.name")
    pw.check_policy("a" * 11 + "b", "someone.long")
    assert accounts.MIN_PASSWORD_LENGTH == 12
    with store.session() as s, pytest.raises(InputError, match="must not be the username"):
        accounts.create_admin(s, "administrator", "Administrator", actor="cli:tester")


def test_changing_a_password_needs_the_current_one(store: Store) -> None:
    kim = _member(store)
    with store.session() as s, pytest.raises(InputError, match="the current password is wrong"):
        accounts.change_password(s, kim.id, "not it at all", "a brand new password", now=T0)
    with store.session() as s, pytest.raises(InputError, match="the same as the current one"):
        accounts.change_password(s, kim.id, PASSWORD, PASSWORD, now=T0)
    with store.session() as s, pytest.raises(InputError, match="too short"):
        accounts.change_password(s, kim.id, PASSWORD, "short", now=T0)
    with store.session() as s:
        accounts.change_password(s, kim.id, PASSWORD, "a brand new password", now=T0)
    assert _login(store, "kim", PASSWORD, T0).refused == "bad_credentials"
    assert _login(store, "kim", "a brand new password", T0).ok
    assert _actions(store)[-1] == ("account:kim", "account.password", "account")


# --------------------------------------------------------------------------- web sessions


def test_a_session_opens_reads_expires_and_closes(store: Store) -> None:
    kim = _member(store)
    with store.session() as s:
        token, info = accounts.open_session(s, kim.id, now=T0)
    assert info.account.id == kim.id and info.expires_at == T0 + accounts.SESSION_LIFETIME
    assert len(info.csrf_token) >= 43 and info.csrf_token != token
    with store.session(readonly=True) as s:
        stored = s.execute(select(WebSession)).scalar_one()
        assert stored.token_hash != token and len(stored.token_hash) == 64
        found = accounts.session_info(s, token, now=T0 + dt.timedelta(hours=11))
        assert found is not None and (found.account.username, found.csrf_token) == ("kim", info.csrf_token)
        assert accounts.session_info(s, token, now=T0 + accounts.SESSION_LIFETIME) is None
        assert accounts.session_info(s, token + "x", now=T0) is None
        assert accounts.session_info(s, "", now=T0) is None
    with store.session() as s:
        other, _ = accounts.open_session(s, kim.id, now=T0)
        accounts.close_session(s, token)
        accounts.close_session(s, "never issued")
    with store.session(readonly=True) as s:
        assert accounts.session_info(s, token, now=T0) is None
        assert accounts.session_info(s, other, now=T0) is not None
    with store.session() as s:  # a new session clears the account's expired ones
        accounts.open_session(s, kim.id, now=T0 + dt.timedelta(days=1))
        assert len(s.execute(select(WebSession)).scalars().all()) == 1


def test_a_lock_keeps_open_sessions_but_deactivation_ends_them(store: Store) -> None:
    admin = _admin(store)
    kim = _member(store)
    with store.session() as s:
        token, _ = accounts.open_session(s, kim.id, now=T0)
    for i in range(LOCK_AFTER):
        _login(store, "kim", f"guess {i}", T0)
    with store.session(readonly=True) as s:
        assert accounts.session_info(s, token, now=T0) is not None
    with store.session() as s:
        view = accounts.set_active(s, kim.id, False, actor=admin.actor, now=T0)
        assert not view.active
        assert s.execute(select(WebSession)).first() is None
        assert accounts.session_info(s, token, now=T0) is None
        with pytest.raises(InputError, match="cannot sign in"):
            accounts.open_session(s, kim.id, now=T0)
        again = accounts.set_active(s, kim.id, True, actor=admin.actor, now=T0)
        assert again.active
        assert accounts.session_info(s, token, now=T0) is None  # ended sessions stay ended
        assert accounts.set_active(s, kim.id, True, actor=admin.actor, now=T0) == again  # no change, no entry
    assert [a for _, a, _ in _actions(store)][-2:] == ["account.deactivate", "account.reactivate"]


def test_the_last_active_admin_cannot_be_deactivated(store: Store) -> None:
    root = _admin(store)
    with store.session() as s, pytest.raises(InputError, match="last active administrator"):
        accounts.set_active(s, root.id, False, actor=root.actor)
    other = _admin(store, "second")
    with store.session() as s:
        accounts.set_active(s, root.id, False, actor=other.actor)
        with pytest.raises(InputError, match="last active administrator"):
            accounts.set_active(s, other.id, False, actor=other.actor)


# --------------------------------------------------------------------------- API tokens


def test_api_tokens_are_shown_once_found_by_digest_revoked_and_expire(store: Store) -> None:
    admin = _admin(store)
    kim = _member(store)
    with store.session() as s:
        view, token = accounts.create_api_token(s, kim.id, "  nightly   upload ", actor=kim.actor, now=T0)
        dated, dated_token = accounts.create_api_token(s, kim.id, "ci", actor=kim.actor, now=T0,
                                                       expires_at=T0 + dt.timedelta(days=30))
        with pytest.raises(InputError, match="not in the future"):
            accounts.create_api_token(s, kim.id, "old", actor=kim.actor, now=T0, expires_at=T0)
        with pytest.raises(InputError, match="needs a name"):
            accounts.create_api_token(s, kim.id, "  ", actor=kim.actor, now=T0)
    assert re.fullmatch(r"simsa_[A-Za-z0-9_-]{43}", token)
    assert view.prefix == token[:len(view.prefix)] and len(view.prefix) >= 8 and view.name == "nightly upload"
    assert view.to_dict()["expires_at"] is None and dated.to_dict()["expires_at"] == "2026-04-01T09:00:00Z"
    with store.session(readonly=True) as s:
        stored = s.execute(select(ApiToken).where(ApiToken.id == view.id)).scalar_one()
        assert token not in (stored.token_hash, stored.prefix) and len(stored.token_hash) == 64
        found = accounts.token_account(s, token, now=T0 + dt.timedelta(days=365))
        assert found is not None and found.id == kim.id
        assert accounts.token_account(s, dated_token, now=T0 + dt.timedelta(days=29)) is not None
        assert accounts.token_account(s, dated_token, now=T0 + dt.timedelta(days=30)) is None
        assert accounts.token_account(s, token[:-1], now=T0) is None
        assert accounts.token_account(s, "", now=T0) is None
        assert [t.id for t in accounts.list_tokens(s, kim.id)] == [view.id, dated.id]
        assert stored.last_used_at is None  # a look-up writes nothing
    with store.session() as s:
        with pytest.raises(InputError, match=f"no API token {view.id}"):
            accounts.revoke_api_token(s, view.id, actor=admin.actor, account_id=admin.id)  # not admin's token
        revoked = accounts.revoke_api_token(s, view.id, actor=kim.actor, account_id=kim.id, now=T0)
        assert revoked.revoked_at == T0 and not revoked.usable(T0)
        with pytest.raises(InputError, match="already revoked"):
            accounts.revoke_api_token(s, view.id, actor=admin.actor)
        with pytest.raises(InputError, match="no API token 999"):
            accounts.revoke_api_token(s, 999, actor=admin.actor)
    with store.session(readonly=True) as s:
        assert accounts.token_account(s, token, now=T0) is None
    with store.session() as s:  # a deactivated account's tokens stop working
        accounts.set_active(s, kim.id, False, actor=admin.actor)
        assert accounts.token_account(s, dated_token, now=T0) is None
        accounts.set_active(s, kim.id, True, actor=admin.actor)
        assert accounts.token_account(s, dated_token, now=T0) is not None


# --------------------------------------------------------------------------- the audit log


def test_every_account_write_is_audited_the_chain_verifies_and_no_secret_is_in_it(store: Store) -> None:
    secrets: list[str] = [ADMIN_PASSWORD, PASSWORD]
    admin = _admin(store)
    kim, invitation = _invited(store, "kim", Role.TEAM, program_key="k-ai-2026", team_id="baekdu")
    secrets.append(invitation)
    with store.session() as s:
        second = accounts.reinvite(s, kim.id, actor=admin.actor, now=T0)
        secrets.append(second)
        accounts.accept_invitation(s, second, PASSWORD, now=T0)
        session_token, info = accounts.open_session(s, kim.id, now=T0)
        secrets += [session_token, info.csrf_token]
        view, api_token = accounts.create_api_token(s, kim.id, "ci", actor=kim.actor, now=T0)
        secrets.append(api_token)
        accounts.revoke_api_token(s, view.id, actor=admin.actor)
        accounts.change_password(s, kim.id, PASSWORD, "the newer passphrase", now=T0)
        secrets.append("the newer passphrase")
    for i in range(LOCK_AFTER):
        _login(store, "kim", f"wrong password {i}", T0)
    with store.session() as s:
        accounts.unlock(s, kim.id, actor=admin.actor, now=T0)
        accounts.set_active(s, kim.id, False, actor=admin.actor, now=T0)
        accounts.set_active(s, kim.id, True, actor=admin.actor, now=T0)
        secrets += [r for r in s.execute(select(Account.password_hash)).scalars() if r]
        secrets += list(s.execute(select(Invitation.token_hash)).scalars())
        secrets += list(s.execute(select(ApiToken.token_hash)).scalars())
    with store.session(readonly=True) as s:
        result = audit_log.verify(s)
        assert result.ok, result.problems
        entries = s.execute(select(AuditEntry).order_by(AuditEntry.seq)).scalars().all()
    assert [(e.actor, e.action) for e in entries] == [
        ("cli:tester", "account.create"), ("account:root", "account.create"), ("account:root", "account.invite"),
        ("account:kim", "account.activate"), ("account:kim", "token.create"), ("account:root", "token.revoke"),
        ("account:kim", "account.password"), ("system", "account.lock"), ("account:root", "account.unlock"),
        ("account:root", "account.deactivate"), ("account:root", "account.reactivate")]
    for e in entries:
        payload = json.loads(e.payload)
        assert "row" not in payload
        assert e.entity in {"account", "api_token"} and e.entity_id is not None
    created = json.loads(entries[1].payload)
    assert (created["username"], created["role"], created["program"], created["team"]) == (
        "kim", "team", "k-ai-2026", "baekdu")
    token_entry = json.loads(entries[4].payload)
    assert (token_entry["account"], token_entry["name"], token_entry["prefix"]) == ("kim", "ci", view.prefix)
    logged = " ".join(e.payload for e in entries)
    assert "$argon2" not in logged
    for secret in secrets:
        assert secret not in logged


# --------------------------------------------------------------------------- the schema


def _schema_at(url: str, revision: str) -> Store:
    """A store at an older schema version, as an older simsa left it."""
    from alembic import command

    from simsa.store.db import _alembic_config

    store = Store(url, migrate=False)
    with store.engine.begin() as conn:
        cfg = _alembic_config(store.engine)
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, revision)
    return store


def test_a_database_made_before_accounts_upgrades_and_signs_in(db_url: str) -> None:
    old = _schema_at(db_url, "0002")
    with old.engine.connect() as conn:
        assert conn.execute(text("SELECT version_num FROM alembic_version")).scalar_one() == "0002"
    with old.session() as s:  # a programme loaded, with its audit entry, before accounts existed
        programs.register(s, load_program(EXAMPLE), "tester")
    old.dispose()
    store = Store(db_url)
    try:
        with store.engine.connect() as conn:
            assert conn.execute(text("SELECT version_num FROM alembic_version")).scalar_one() == head_revision()
        admin = _admin(store)
        assert _login(store, "root", ADMIN_PASSWORD, T0).ok
        with store.session() as s:
            token, _ = accounts.open_session(s, admin.id, now=T0)
            assert accounts.session_info(s, token, now=T0) is not None
            assert audit_log.verify(s).ok
        with store.session() as s:  # the database refuses what the service would never write
            s.execute(text("INSERT INTO accounts (username, display_name, role, created_at, created_by) "
                           "VALUES ('ok-name', 'x', 'public', :t, 'x')"), {"t": T0})
        for values in ("'Upper', 'x', 'public', NULL", "'nobody', 'x', 'owner', NULL",
                       "'team-a', 'x', 'team', NULL", "'rater-a', 'x', 'rater', 't1'"):
            with pytest.raises(IntegrityError, match=r"(?i)check"), store.session() as s:
                s.execute(text(f"INSERT INTO accounts (username, display_name, role, team_id, created_at, "
                               f"created_by) VALUES ({values}, :t, 'x')"), {"t": T0})
    finally:
        store.dispose()


def test_changing_a_password_signs_out_every_other_session(store: Store) -> None:
    kim = _member(store)
    with store.session() as s:
        here, _ = accounts.open_session(s, kim.id, now=T0)
        elsewhere, _ = accounts.open_session(s, kim.id, now=T0)
    with store.session() as s:
        accounts.change_password(s, kim.id, PASSWORD, "a brand new password", now=T0, keep_session=here)
    with store.session(readonly=True) as s:
        assert accounts.session_info(s, here, now=T0) is not None
        assert accounts.session_info(s, elsewhere, now=T0) is None
