"""`{{ name }}` placeholders: substitution only, missing values empty, capped."""

from __future__ import annotations

from triggers.templates import TEXT_CAP_BYTES, render


def test_it_fills_dotted_paths_from_the_firing() -> None:
    context = {
        "trigger": "nightly",
        "turn": {"status": "failed"},
        "payload": {"repo": {"name": "app"}, "tags": ["a", "b"], "ok": True},
    }
    text = render(
        "{{trigger}}: {{ turn.status }} in {{ payload.repo.name }} "
        "{{ payload.tags.1 }} {{ payload.ok }} {{ payload.tags }}",
        context,
    )
    assert text == 'nightly: failed in app b true ["a","b"]'


def test_it_renders_missing_values_empty() -> None:
    assert render("[{{ payload.nope.deeper }}][{{ nothing }}]", {}) == "[][]"


def test_it_never_evaluates_code() -> None:
    context = {"payload": {"x": "{{ trigger }}"}, "trigger": "t"}
    assert render("{{ __import__('os').system('true') }}", context) == (
        "{{ __import__('os').system('true') }}"
    )
    assert render("{{ payload.__class__ }}", context) == ""
    # A value that looks like a placeholder is not rendered again.
    assert render("{{ payload.x }}", context) == "{{ trigger }}"


def test_it_caps_the_rendered_text() -> None:
    big = "é" * TEXT_CAP_BYTES
    text = render("{{ v }}" * 1000, {"v": big})
    assert len(text.encode("utf-8")) <= TEXT_CAP_BYTES
    assert text == "é" * (TEXT_CAP_BYTES // 2)
