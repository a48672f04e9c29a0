"""Lightspeed's X-Signature: md5(raw body + secret), checked on the exact bytes, constant time."""

from __future__ import annotations

import hashlib

import pytest

from conftest import PAID_HEADERS, PAID_RAW, SECRET
from relay.core.errors import SignatureError
from relay.core.signature import sign, verify


def test_known_answer_vector_from_the_shared_fixture():
    assert sign(PAID_RAW, SECRET) == PAID_HEADERS["headers"]["X-Signature"] == "7398594e05b5ea9baa7c2e758b22efcb"
    verify(PAID_RAW, "7398594e05b5ea9baa7c2e758b22efcb", SECRET)


def test_signing_is_md5_of_body_then_secret_without_separator():
    assert sign(b'{"a":1}', "s3cret") == hashlib.md5(b'{"a":1}s3cret').hexdigest()


@pytest.mark.parametrize("header", [
    None, "", " ", "7398594e05b5ea9baa7c2e758b22efcc", "7398594e05b5ea9baa7c2e758b22ef", "g" * 32,
    "7398594e05b5ea9baa7c2e758b22efcb7398594e05b5ea9baa7c2e758b22efcb", "md5=7398594e05b5ea9baa7c2e758b22efcb",
    "7398594e05b5ea9baa7c2e758b22éfcb",
])
def test_every_malformed_or_wrong_header_is_a_signature_error(header):
    with pytest.raises(SignatureError):
        verify(PAID_RAW, header, SECRET)


def test_a_single_changed_byte_fails():
    tampered = PAID_RAW.replace(b'"priceIncl":140.4', b'"priceIncl":140.5')
    assert tampered != PAID_RAW
    with pytest.raises(SignatureError):
        verify(tampered, PAID_HEADERS["headers"]["X-Signature"], SECRET)


def test_non_utf8_body_is_a_signature_error_not_a_crash():
    with pytest.raises(SignatureError):
        verify(b"\xff\xfe\xfd", "7398594e05b5ea9baa7c2e758b22efcb", SECRET)


def test_errors_do_not_carry_the_secret_or_the_body():
    with pytest.raises(SignatureError) as caught:
        verify(PAID_RAW, "0" * 32, SECRET)
    assert SECRET not in str(caught.value) and "marielle" not in str(caught.value)
