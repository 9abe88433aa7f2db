"""URL scrubbing: credentials never survive into what is stored or shown; the live request keeps them."""

from __future__ import annotations

import base64

import pytest

from ted.library import Library, ModelInfo
from ted.redact import scrub_text, scrub_url, scrub_value, split_credentials

PASSWORD = "PlantedPassw0rd"
TOKEN = "qtok-5e6f7a8b"


@pytest.mark.parametrize(
    "url, shown",
    [
        (f"http://alice:{PASSWORD}@host:8000/v1", "http://***@host:8000/v1"),
        (f"https://{TOKEN}@host/v1", "https://***@host/v1"),
        (f"https://host/v1?api-key={TOKEN}&model=x", "https://host/v1?api-key=***&model=x"),
        (f"https://host/v1?key={TOKEN}", "https://host/v1?key=***"),
        (f"https://host/v1?access_token={TOKEN}", "https://host/v1?access_token=***"),
        (f"https://host/cb#access_token={TOKEN}", "https://host/cb#***"),
        ("http://127.0.0.1:8080/v1?api-version=2024-01-01", "http://127.0.0.1:8080/v1?api-version=2024-01-01"),
        ("http://127.0.0.1:8080/v1", "http://127.0.0.1:8080/v1"),
    ],
)
def test_scrub_url_masks_userinfo_and_secret_parameters(url: str, shown: str) -> None:
    assert scrub_url(url) == shown


def test_scrub_text_finds_urls_inside_specs_and_error_lines() -> None:
    line = f"cannot reach http://alice:{PASSWORD}@host/v1?token={TOKEN}: connection refused (spec openai:m@https://u:{PASSWORD}@h/v1)"
    scrubbed = scrub_text(line)
    assert PASSWORD not in scrubbed and TOKEN not in scrubbed
    assert "http://***@host/v1?token=***" in scrubbed and "connection refused" in scrubbed
    assert scrub_text("no url here: alice:pw@host") == "no url here: alice:pw@host"


def test_scrub_value_walks_nested_records() -> None:
    record = {"student": f"openai:m@http://a:{PASSWORD}@h/v1", "nested": [{"url": f"http://h/?key={TOKEN}"}], "n": 3}
    assert PASSWORD not in repr(scrub_value(record)) and TOKEN not in repr(scrub_value(record))
    assert scrub_value(record)["n"] == 3


def test_split_credentials_keeps_the_secret_query_for_the_live_request() -> None:
    base, query, basic = split_credentials(f"http://a:{PASSWORD}@h/v1?api-key={TOKEN}&api-version=1")
    assert base == "http://h/v1?api-version=1"
    assert query == {"api-key": TOKEN}
    assert basic is not None and base64.b64decode(basic.removeprefix("Basic ")).decode() == f"a:{PASSWORD}"  # sent as Basic auth
    assert split_credentials("http://h:8000/v1") == ("http://h:8000/v1", {}, None)


def test_a_library_never_stores_a_credential_in_its_provenance() -> None:
    spec = f"openai:m@http://alice:{PASSWORD}@h/v1?key={TOKEN}"
    lib = Library(config={"student": spec, "data": f"https://h/d.jsonl?token={TOKEN}"}, student=ModelInfo(model="m", backend="openai", url=spec))
    text = lib.to_json()
    assert PASSWORD not in text and TOKEN not in text
    assert "openai:m@http://***@h/v1?key=***" in text
    loaded = Library.from_json(text.replace("***@h", f"bob:{PASSWORD}@h"))  # a file written by an older ted
    assert PASSWORD not in loaded.to_json()


def test_the_openai_backend_shows_the_scrubbed_url_and_sends_the_full_one() -> None:
    from ted.models.openai_api import OpenAIChatModel

    model = OpenAIChatModel("spec", "m", base_url=f"http://alice:{PASSWORD}@127.0.0.1:9/v1?api-key={TOKEN}")
    assert model.shown_url == "http://***@127.0.0.1:9/v1?api-key=***"
    assert PASSWORD not in repr(model) and TOKEN not in repr(model)
    assert model.base_url == "http://127.0.0.1:9/v1" and model._query == {"api-key": TOKEN}
    assert model._basic_auth == "Basic " + base64.b64encode(f"alice:{PASSWORD}".encode()).decode()  # the live request's


def test_quoted_authorization_headers_are_masked() -> None:
    assert scrub_text("upstream failed for credentials Basic YWxpY2U6UGxhbnRlZA==") == "upstream failed for credentials Basic ***"
    assert scrub_text("Bearer sk-abcdefghijkl rejected") == "Bearer *** rejected"
