"""What the PostgreSQL driver says about a failure is shown with every password masked: it
may quote the URL, or the connection parameters, it was given."""

from __future__ import annotations

from synergychat.storage.postgres import masked_detail


def test_passwords_in_the_user_part_and_in_parameters_are_masked() -> None:
    urls = (
        "postgresql://chat:s3cret-pw@db:5432/synergychat",
        "postgresql://other@db/x?sslmode=require&password=p%40ram-pw",
    )
    failure = OSError("could not connect with s3cret-pw or p%40ram-pw to db:5432")
    assert masked_detail(failure, *urls) == "could not connect with *** or *** to db:5432"


def test_a_url_without_a_password_masks_nothing() -> None:
    # An empty password must not "mask" the empty string between every character.
    failure = ConnectionRefusedError("connection refused")
    assert masked_detail(failure, "postgresql://chat@db/x", "postgresql://chat:@db/x") == "connection refused"
    assert masked_detail(RuntimeError(), "postgresql://a:b@c/d") == "RuntimeError"
