from __future__ import annotations

import pytest

from gateway.mapping.paths import PathError, compile_path


def test_plain_nested_and_append() -> None:
    body: dict = {}
    assert compile_path("a.b").set(body, 1) == "a.b"
    compile_path("list[]").set(body, "x")
    compile_path("list[]").set(body, "y")
    compile_path("items[].code").set(body, "c")
    assert body == {"a": {"b": 1}, "list": ["x", "y"], "items": [{"code": "c"}]}


def test_indexed_element_is_shared_by_rules() -> None:
    body: dict = {}
    compile_path("dose[0].route").set(body, "oral")
    compile_path("dose[0].site").set(body, "arm")
    assert body == {"dose": [{"route": "oral", "site": "arm"}]}


def test_first_rule_wins_for_single_elements() -> None:
    body: dict = {}
    p = compile_path("status")
    assert p.set(body, "final") == "status"
    assert p.set(body, "final") == "status"  # the same value is not a conflict
    assert p.set(body, "preliminary") is None
    assert body == {"status": "final"}


def test_dicts_merge_into_dicts() -> None:
    body: dict = {"q": {"value": 5}}
    assert compile_path("q").set(body, {"unit": "mg"}) == "q"
    assert body == {"q": {"value": 5, "unit": "mg"}}


def test_choice_elements_take_one_type() -> None:
    body: dict = {}
    p = compile_path("deceased[x]")
    assert p.set(body, ("DateTime", "2020-01-01")) == "deceasedDateTime"
    assert p.set(body, ("Boolean", True)) is None
    assert body == {"deceasedDateTime": "2020-01-01"}


@pytest.mark.parametrize("bad", ["", " a", "a.[]", "a[x].b", "a[z]", "1a"])
def test_bad_paths_are_refused(bad: str) -> None:
    with pytest.raises(PathError):
        compile_path(bad)
