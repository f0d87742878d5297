"""fleet/hub/passwords.py: the hashes fleet writes and the hub checks (the same file runs in the hub)."""
from __future__ import annotations

import pytest

from fleet.hub import passwords

SALT = bytes.fromhex("00112233445566778899aabbccddeeff")


def test_a_password_matches_its_hash_and_nothing_else():
    encoded = passwords.hash_password("3f1c9a0b7d2e4f6a8b9c0d1e2f3a4b5c", SALT)
    assert encoded.startswith("scrypt$16384$8$1$")
    assert passwords.verify_password(encoded, "3f1c9a0b7d2e4f6a8b9c0d1e2f3a4b5c")
    assert not passwords.verify_password(encoded, "3f1c9a0b7d2e4f6a8b9c0d1e2f3a4b5d")
    assert not passwords.verify_password(encoded, "")
    assert not passwords.verify_password(encoded, "3f1c9a0b7d2e4f6a8b9c0d1e2f3a4b5c ")


def test_the_salt_makes_equal_passwords_hash_differently_and_is_deterministic():
    a = passwords.hash_password("same", SALT)
    b = passwords.hash_password("same", bytes(reversed(SALT)))
    assert a != b
    assert a == passwords.hash_password("same", SALT)  # a re-run writes the same file
    assert "same" not in a


def test_no_hash_or_a_malformed_one_never_matches():
    assert not passwords.verify_password(None, "anything")
    assert not passwords.verify_password("", "anything")
    good = passwords.hash_password("pw", SALT)
    for bad in ("plain:pw", good.replace("scrypt", "md5"), good + "$x", good.rsplit("$", 1)[0] + "$notbase64!",
                "scrypt$16385$8$1$" + good.split("$", 4)[4],  # N not a power of two
                "scrypt$1048576$8$1$" + good.split("$", 4)[4]):  # N beyond what the hub computes
        assert not passwords.verify_password(bad, "pw"), bad


def test_refuses_to_hash_without_salt_or_password():
    with pytest.raises(ValueError):
        passwords.hash_password("pw", b"short")
    with pytest.raises(ValueError):
        passwords.hash_password("", SALT)


def test_hash_file_round_trip_sorted_with_header():
    hashes = {"zoe-ngo": passwords.hash_password("b", SALT), "ada": passwords.hash_password("a", SALT)}
    text = passwords.hash_file_text(hashes)
    lines = text.splitlines()
    assert lines[0].startswith("#") and text.endswith("\n")
    assert [line.split(":")[0] for line in lines[1:]] == ["ada", "zoe-ngo"]
    assert passwords.parse_hash_file(text) == hashes
    assert "a" not in {line.split(":", 1)[1] for line in lines[1:]}


def test_hash_file_refuses_what_would_break_a_line_or_cannot_be_checked():
    good = passwords.hash_password("a", SALT)
    for login in ("", "a:b", "a b", " a", "a\nb"):
        with pytest.raises(ValueError):
            passwords.hash_file_text({login: good})
    with pytest.raises(ValueError):
        passwords.hash_file_text({"ada": "a-plain-password"})


def test_parse_skips_comments_blank_and_malformed_lines():
    good = passwords.hash_password("a", SALT)
    text = f"# c\n\nada:{good}\nbroken line\nbob:plain\n:{good}\n  eve:{good}  \n"
    assert passwords.parse_hash_file(text) == {"ada": good, "eve": good}
