import pytest
from django.core.exceptions import ImproperlyConfigured

from iit_service.env import database_from_url, env_bool, env_int


def test_it_reads_a_boolean(monkeypatch):
    monkeypatch.setenv("X_FLAG", "yes")
    assert env_bool("X_FLAG") is True


def test_it_refuses_a_bad_boolean_loudly(monkeypatch):
    monkeypatch.setenv("X_FLAG", "maybe")
    with pytest.raises(ImproperlyConfigured, match="X_FLAG"):
        env_bool("X_FLAG")


def test_it_refuses_a_non_integer(monkeypatch):
    monkeypatch.setenv("X_NUM", "ten")
    with pytest.raises(ImproperlyConfigured, match="X_NUM"):
        env_int("X_NUM", 1)


def test_it_reads_secrets_from_a_file(monkeypatch, tmp_path):
    secret = tmp_path / "secret"
    secret.write_text("from-file\n")
    monkeypatch.setenv("X_NUM_FILE", str(secret))
    monkeypatch.setenv("X_NUM", "ignored")
    with pytest.raises(ImproperlyConfigured):
        env_int("X_NUM", 1)  # the file's text wins, and it is no integer


def test_a_postgres_url_gets_persistent_checked_connections_and_a_name(tmp_path):
    db = database_from_url(
        "postgres://u:p%40ss@db.example:6543/iit?sslmode=require", base_dir=tmp_path, app_name="iit", conn_max_age=60
    )
    assert db["NAME"] == "iit" and db["PASSWORD"] == "p@ss" and db["PORT"] == "6543"
    assert db["CONN_MAX_AGE"] == 60 and db["CONN_HEALTH_CHECKS"] is True
    assert db["OPTIONS"]["application_name"] == "iit" and db["OPTIONS"]["sslmode"] == "require"


def test_a_sqlite_url_is_relative_to_the_project(tmp_path):
    assert database_from_url("sqlite:///x.db", base_dir=tmp_path, app_name="a", conn_max_age=0)["NAME"] == str(
        tmp_path / "x.db"
    )
    assert (
        database_from_url("sqlite:////abs/x.db", base_dir=tmp_path, app_name="a", conn_max_age=0)["NAME"] == "/abs/x.db"
    )


def test_an_unknown_database_scheme_is_refused(tmp_path):
    with pytest.raises(ImproperlyConfigured):
        database_from_url("mysql://x/y", base_dir=tmp_path, app_name="a", conn_max_age=0)


def test_a_postgres_url_gets_the_connect_and_statement_timeouts(tmp_path):
    db = database_from_url("postgres://u@db/iit", base_dir=tmp_path, app_name="a", conn_max_age=0,
                           connect_timeout=2, statement_timeout=1.5)  # fmt: skip
    assert db["OPTIONS"]["connect_timeout"] == 2 and db["OPTIONS"]["options"] == "-c statement_timeout=1500"
    untimed = database_from_url("postgres://u@db/iit?connect_timeout=9", base_dir=tmp_path, app_name="a",
                                conn_max_age=0, statement_timeout=0)  # fmt: skip
    assert untimed["OPTIONS"]["connect_timeout"] == 9 and "options" not in untimed["OPTIONS"]
