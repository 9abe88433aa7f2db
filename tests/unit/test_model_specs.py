"""Model spec strings: where the model id ends and the base URL starts."""

import pytest

from ted.errors import ModelError
from ted.models import parse_spec


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("openai:gpt-4o-mini", ("openai", "gpt-4o-mini", None)),
        ("openai:m@http://127.0.0.1:8080/v1", ("openai", "m", "http://127.0.0.1:8080/v1")),
        # Vertex-style dated ids keep their `@`, with or without a URL.
        ("openai:claude-sonnet-4@20250514", ("openai", "claude-sonnet-4@20250514", None)),
        ("openai:claude-sonnet-4@20250514@http://h:1/v1", ("openai", "claude-sonnet-4@20250514", "http://h:1/v1")),
        # Credentials inside the URL stay in the URL.
        ("openai:a@b@https://u:p@h/v1", ("openai", "a@b", "https://u:p@h/v1")),
        ("hf:org/name", ("hf", "org/name", None)),
    ],
)
def test_spec_splits_at_the_last_at_before_the_url(spec: str, expected: tuple) -> None:
    assert parse_spec(spec) == expected


@pytest.mark.parametrize("spec", ["openai:m@", "openai:m@ftp://h/v1", "openai:@http://h/v1", "banana"])
def test_malformed_specs_are_refused(spec: str) -> None:
    with pytest.raises(ModelError):
        parse_spec(spec)
