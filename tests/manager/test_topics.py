"""Topic templates: compiled once at load, rendered per input with no parsing."""

from __future__ import annotations

import pytest

from edgefn.manager.topics import (
    CLIENTID, FUNCTION, TOPIC, TemplateError, compile_template, filter_depth, invalid_topic, strip_shared,
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
