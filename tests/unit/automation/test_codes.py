"""Voucher codes: alphabet, length, entropy, normalisation of what people type."""

from __future__ import annotations

import math

from automation.incentives import codes


def test_alphabet_has_32_symbols_without_look_alikes():
    assert len(codes.ALPHABET) == 32 == len(set(codes.ALPHABET))
    assert not set("ILOU") & set(codes.ALPHABET)


def test_codes_carry_sixty_bits():
    assert codes.LENGTH == 12
    assert codes.ENTROPY_BITS == 60 == codes.LENGTH * math.log2(len(codes.ALPHABET))


def test_single_and_bulk_codes_use_only_the_alphabet():
    for code in [codes.generate_code() for _ in range(200)] + codes.generate_codes(1001):
        assert codes.is_well_formed(code), code


def test_bulk_generation_returns_exactly_the_number_asked_for():
    assert [len(codes.generate_codes(n)) for n in (0, 1, 2, 3, 10_001)] == [0, 1, 2, 3, 10_001]


def test_bulk_codes_are_spread_over_the_whole_alphabet():
    text = "".join(codes.generate_codes(5000))
    counts = [text.count(symbol) for symbol in codes.ALPHABET]
    expected = len(text) / 32
    assert min(counts) > expected * 0.85 and max(counts) < expected * 1.15


def test_codes_do_not_repeat():
    batch = codes.generate_codes(50_000)
    assert len(set(batch)) == len(batch)


def test_format_groups_in_fours():
    assert codes.format_code("ABCD2345WXYZ") == "ABCD-2345-WXYZ"


def test_normalise_accepts_what_people_type():
    assert codes.normalise("abcd-2345-wxyz") == "ABCD2345WXYZ"
    assert codes.normalise(" abcd 2345 wxyz ") == "ABCD2345WXYZ"
    assert codes.normalise("O0OI-1IL1-lLoo") == "000111111100"
    assert codes.is_well_formed(codes.normalise("ab_cd.2345-WXYZ"))


def test_malformed_input_is_not_well_formed():
    assert not codes.is_well_formed(codes.normalise("ABCD-2345"))
    assert not codes.is_well_formed(codes.normalise("ABCD-2345-WXYU"))  # U is not in the alphabet
    assert not codes.is_well_formed("")
