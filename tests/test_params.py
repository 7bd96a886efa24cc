"""Parameter choices and ranges are declared in each Params dataclass's field metadata and checked in __init__, so a
bad value fails before any work with one line that lists what is valid; every documented choice is accepted."""
import dataclasses

import pytest

from bench.errors import MethodError
from bench.method import CAPABILITIES, available, get_method, valid_choices

CHOICE_FIELDS = [(name, f.name) for name in available() for f in dataclasses.fields(get_method(name).Params)
                 if valid_choices(f) is not None and f.name not in getattr(get_method(name), "fixed", {})]
RANGE_FIELDS = [(name, f.name) for name in available() for f in dataclasses.fields(get_method(name).Params)
                if "min" in f.metadata and f.name not in getattr(get_method(name), "fixed", {})]


def test_the_issue_s_examples_are_declared():
    declared = set(CHOICE_FIELDS)
    for pair in [("ganprompt", "decoder_tuning"), ("ganprompt", "backbone"), ("ganprompt", "adversarial"),
                 ("tallrec", "loss"), ("tallrec", "template"), ("sasrec", "loss_type"), ("p5", "train_templates")]:
        assert pair in declared, pair


@pytest.mark.parametrize("name, key", CHOICE_FIELDS)
def test_every_documented_choice_is_accepted_and_a_bogus_one_is_not(name, key):
    cls = get_method(name)
    f = {f.name: f for f in dataclasses.fields(cls.Params)}[key]
    choices = valid_choices(f)
    for value in choices:
        assert getattr(cls(**{key: value}).params, key) == value
    with pytest.raises(MethodError) as exc:
        cls(**{key: "bogus"})
    msg = str(exc.value)
    assert "\n" not in msg and f"{key}='bogus'" in msg and ", ".join(choices) in msg and name in msg


@pytest.mark.parametrize("name, key", RANGE_FIELDS)
def test_values_below_a_declared_minimum_fail(name, key):
    cls = get_method(name)
    f = {f.name: f for f in dataclasses.fields(cls.Params)}[key]
    low = f.metadata["min"]
    below = low - 1 if isinstance(low, int) and not isinstance(f.default, float) else low - 1.0
    with pytest.raises(MethodError, match=f"{key}=.*must be >= {low}"):
        cls(**{key: below})
    cls(**{key: low if not isinstance(f.default, float) or isinstance(low, float) else float(low)})


@pytest.mark.parametrize("name, kwargs, message", [
    ("sasrec", {"epochs": "5"}, "expected int, got str"),
    ("sasrec", {"device": "gpu"}, "valid: cpu, cuda, cuda:N, mps or auto"),
    ("p5", {"train_templates": "p5-seq-0,nope"}, "valid (comma-separated): "),
    ("tallrec", {"lora_dropout": 1.5}, "must be <= 1.0"),
    ("ganprompt", {"use_attributes": "yes"}, "expected bool"),
])
def test_types_patterns_lists_and_upper_bounds(name, kwargs, message):
    with pytest.raises(MethodError) as exc:
        get_method(name)(**kwargs)
    assert message in str(exc.value)


def test_a_valid_device_pattern_and_none_where_allowed():
    assert get_method("sasrec")(device="cuda:1", max_minutes=None).params.device == "cuda:1"


def test_capabilities_are_declared_not_probed():
    implements = {name: {c for c in CAPABILITIES if get_method(name).implements(c)} for name in available()}
    assert implements["pop"] == {"score_full"} and implements["textsim"] == {"score_full"}
    assert implements["sasrec"] == {"score_full", "save"} and implements["ctrl"] == {"score_full"}
    assert {"set_prompt", "save", "answer_counter"} <= implements["tallrec"]
    assert {"set_prompt", "save"} <= implements["ganprompt-plain"] and "set_prompt" not in implements["p5"]
    assert [n for n in available() if "input_ablations" in implements[n]] == ["collm"]
    for name in available():
        assert get_method(name).supports_full == ("score_full" in implements[name]), name
    with pytest.raises(MethodError, match="unknown capability"):
        get_method("pop").implements("fly")
