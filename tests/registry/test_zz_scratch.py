from contextlib import contextmanager
from sqlmodel import Session
import spark.registry.routing as r
import pytest

@contextmanager
def plain(engine):
    with Session(engine, expire_on_commit=False) as s:
        yield s
        s.commit()

@pytest.fixture(autouse=True)
def _p(monkeypatch):
    monkeypatch.setattr(r, "write_session", plain)

from tests.registry.test_routing import test_concurrent_applies_with_different_keys_are_all_recorded as t1, test_concurrent_applies_with_one_key_act_once as t2
