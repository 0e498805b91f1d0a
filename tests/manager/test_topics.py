"""Topic templates (compiled once at load, rendered per input with no parsing) and filter algebra."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from edgefn.manager.topics import (
    CLIENTID, FUNCTION, TOPIC, Subscription, TemplateError, compile_template, filter_depth, filters_overlap,
    invalid_topic, strip_shared, subscriptions, topic_matches,
)


def render(text: str, topic: str = "/owner/udid/status") -> str | None:
    return compile_template(text).render(topic.split("/"), topic, "fn", "edge-1")


@pytest.mark.parametrize(("text", "rendered"), [
    ("{2}/{3}", "owner/udid"),  # a leading / makes level 1 empty
    ("/{2}/{3}", "/owner/udid"),
    ("{1}x", "x"),
    ("out/{topic}", "out//owner/udid/status"),
    ("{function}/{clientid}", "fn/edge-1"),
    ("a/{{literal}}/b}}", "a/{literal}/b}"),
    ("plain/topic", "plain/topic"),
])
def test_placeholders_render_levels_topic_function_clientid_and_literal_braces(text: str, rendered: str) -> None:
    assert render(text) == rendered


def test_a_level_the_input_lacks_renders_as_none() -> None:
    assert render("x/{5}") is None
    assert compile_template("x/{1}").render(None, "t", "f", "c") is None


def test_the_compiled_form_is_literal_parts_and_slots() -> None:
    template = compile_template("/{2}/{topic}/{function}/{clientid}")
    assert template.parts == ("/", 2, "/", TOPIC, "/", FUNCTION, "/", CLIENTID)
    assert (template.max_level, template.uses_topic, template.uses_input, template.literal) == (2, True, True, None)
    assert template.placeholders == {"2", "topic", "function", "clientid"}
    plain = compile_template("a/{{b}}")
    assert (plain.literal, plain.max_level, plain.uses_input) == ("a/{b}", 0, False)
    assert not compile_template("{clientid}/status").uses_input


@pytest.mark.parametrize(("text", "fragment"), [
    ("a/{name}", "unknown placeholder {name}"),
    ("a/{0}", "levels count from 1"),
    ("a/{}", "unknown placeholder {}"),
    ("a/{2", "is not closed"),
    ("a/{x{2}}", "is not closed"),
    ("a/2}", "a lone '}'"),
])
def test_bad_templates_do_not_compile(text: str, fragment: str) -> None:
    with pytest.raises(TemplateError, match=None) as caught:
        compile_template(text)
    assert fragment in str(caught.value)


@pytest.mark.parametrize(("topic", "why"), [
    ("", "empty"), ("a/+", "wildcard"), ("a/#", "wildcard"), ("a\0b", "NUL"), ("é" * 40000, "65535"), ("a/b", None),
])
def test_invalid_topics_are_named(topic: str, why: str | None) -> None:
    problem = invalid_topic(topic)
    assert (problem is None) if why is None else (why in (problem or ""))


@pytest.mark.parametrize(("pattern", "depth"), [
    ("a/b", 2), ("/a/+/status", 4), ("a/#", None), ("#", None), ("$share/g/a/+", 2), ("$queue/a/b/c", 3),
])
def test_filter_depth_ignores_shared_prefixes_and_is_open_with_hash(pattern: str, depth: int | None) -> None:
    assert filter_depth(pattern) == depth


def test_strip_shared_removes_share_and_queue_prefixes() -> None:
    assert strip_shared("$share/g/a/b") == "a/b" and strip_shared("$queue/a") == "a" and strip_shared("a") == "a"


# -- overlapping filters: one subscription each, so an input arrives once ---------------------------


@pytest.mark.parametrize(("first", "second", "overlap"), [
    ("a/b", "a/b", True),
    ("a/#", "a/b/c", True),
    ("a/#", "a", True),  # '#' matches its parent level too
    ("a/+/c", "a/b/+", True),
    ("+/+", "a/#", True),
    ("a/b", "a/b/c", False),
    ("a/+", "b/+", False),
    ("a/+/c", "a/+/d", False),
    ("+/x", "$SYS/x", False),  # wildcards at the first level never match $ topics
    ("#", "$SYS/x", False),
    ("$SYS/#", "$SYS/broker", True),
    ("$share/g/a/#", "a/b", True),  # prefixes are not levels
])
def test_filters_overlap_when_some_topic_matches_both(first: str, second: str, overlap: bool) -> None:
    assert filters_overlap(first, second) is overlap
    assert filters_overlap(second, first) is overlap


@pytest.mark.parametrize(("filters", "subscribed"), [
    ({"a/#": 0, "a/b": 1}, {"a/#": 1}),  # the QoS is the higher one
    ({"a/+/c": 1, "a/b/+": 0, "x": 0}, {"a/+/+": 1, "x": 0}),
    ({"a/b/c": 0, "a/+/d": 2, "a/x/+": 0}, {"a/+/+": 2}),  # a cover that overlaps another merges again
    ({"a/b": 0, "a/b/c": 1}, {"a/b": 0, "a/b/c": 1}),  # no topic matches both
    ({"a/#": 1, "$share/g/a/b": 1, "$share/g/a/+": 0, "$share/h/a/b": 0},  # kinds are apart
     {"a/#": 1, "$share/g/a/+": 1, "$share/h/a/b": 0}),
    ({"$queue/a/b": 1, "$queue/a/+": 1}, {"$queue/a/+": 1}),
])
def test_overlapping_filters_of_one_kind_are_subscribed_as_one(
    filters: dict[str, int], subscribed: dict[str, int]
) -> None:
    assert {one.filter: one.qos for one in subscriptions(filters)} == subscribed


def test_a_subscription_says_what_it_covers_and_whether_it_is_broader_than_all_of_them() -> None:
    assert subscriptions({"a/#": 0, "a/b": 0}) == [Subscription("a/#", 0, ("a/#", "a/b"))]
    [nested] = subscriptions({"a/#": 0, "a/b": 0})
    [widened] = subscriptions({"a/+/c": 0, "a/b/+": 0})
    assert not nested.broader and widened.broader


@pytest.mark.parametrize("filters", [
    {"a/+/c": 1, "a/b/+": 0, "x/#": 0, "x/y": 1},
    {"+/b/#": 0, "a/+/c/d": 0, "a/b/c": 0, "q/+": 0, "q/r/s": 0},
])
def test_every_topic_any_filter_matches_is_matched_by_exactly_one_subscription(filters: dict[str, int]) -> None:
    merged = subscriptions(filters)
    for topic in ("a/b/c", "a/b/c/d", "a/x/c", "a/b/z", "x", "x/y", "x/y/z", "q/r", "q/r/s", "z/b"):
        if any(topic_matches(pattern, topic) for pattern in filters):
            assert sum(topic_matches(one.filter, topic) for one in merged) == 1, topic


_LEVELS = st.sampled_from(["a", "b", "$s"])
_FILTER_LEVELS = st.sampled_from(["a", "b", "$s", "+"])


@st.composite
def _filters(draw: st.DrawFn) -> str:
    levels = draw(st.lists(_FILTER_LEVELS, max_size=3))
    return "/".join([*levels, "#"] if not levels or draw(st.booleans()) else levels)


@given(st.dictionaries(_filters(), st.integers(0, 2), min_size=1, max_size=6),
       st.lists(st.lists(_LEVELS, min_size=1, max_size=4).map("/".join), min_size=1, max_size=20))
def test_subscriptions_bring_every_wanted_topic_exactly_once_at_the_qos_it_needs(
    filters: dict[str, int], topics: list[str]
) -> None:
    merged = subscriptions(filters)
    assert sorted(pattern for one in merged for pattern in one.covers) == sorted(filters)
    for topic in topics:
        wanted = [pattern for pattern in filters if topic_matches(pattern, topic)]
        bringing = [one for one in merged if topic_matches(one.filter, topic)]
        if wanted:
            assert len(bringing) == 1
            assert set(wanted) <= set(bringing[0].covers)
            assert bringing[0].qos >= max(filters[pattern] for pattern in wanted)
