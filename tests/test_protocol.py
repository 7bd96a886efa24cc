"""The Protocol type validates itself, and its tag round-trips."""
import numpy as np
import pytest

from bench.protocol import Protocol, ProtocolError, parse_protocols
from bench.results import Protocol as OldImport


def test_the_old_import_still_works():
    assert OldImport is Protocol


@pytest.mark.parametrize("p", [Protocol(), Protocol("full"), Protocol("full", max_users=50),
                               Protocol("sampled", "popularity", 19, 100), Protocol("sampled", "uniform", 1)])
def test_tag_round_trip(p):
    assert Protocol.from_tag(p.tag) == p


@pytest.mark.parametrize("tag, message", [
    ("sampled-best-n5", "sampler 'best'; valid: uniform, popularity"),
    ("sampled-uniform-n0", "negatives 0: must be an integer >= 1"),
    ("full-u0", "users 0: must be"),
    ("sampled-uniform-nx", "expected full, full-u<USERS>"),
    ("ranked", "expected full"),
])
def test_from_tag_rejects_bad_tags_in_one_line(tag, message):
    with pytest.raises(ProtocolError) as exc:
        Protocol.from_tag(tag)
    assert message in str(exc.value) and tag in str(exc.value) and "\n" not in str(exc.value)


@pytest.mark.parametrize("kwargs, message", [
    ({"mode": "partial"}, "mode 'partial'; valid: sampled, full"),
    ({"sampler": "hard"}, "sampler 'hard'"),
    ({"n_negatives": 0}, "negatives 0"),
    ({"n_negatives": 2.5}, "negatives 2.5"),
    ({"max_users": -3}, "users -3"),
    ({"max_users": True}, "users True"),
])
def test_bad_values_fail_when_built(kwargs, message):
    with pytest.raises(ProtocolError, match=message.replace("(", r"\(")):
        Protocol(**kwargs)


def test_numpy_counts_are_accepted():
    assert Protocol("sampled", "uniform", np.int64(19)).tag == "sampled-uniform-n19"


def test_parse_protocols():
    got = parse_protocols("sampled,full,sampled-uniform-n99", "uniform,popularity", 99, None)
    assert [p.tag for p in got] == ["sampled-uniform-n99", "sampled-popularity-n99", "full"]
    assert parse_protocols("sampled", "uniform", 19, 100)[0].tag == "sampled-uniform-n19-u100"
    for bad, message in (("ranked", "--protocol 'ranked'"), ("", "no protocol")):
        with pytest.raises(ProtocolError, match=message):
            parse_protocols(bad)
    with pytest.raises(ProtocolError, match="--sampler 'hard'"):
        parse_protocols("sampled", "hard")
