"""The prototypes read from confusable_homoglyphs' table file agree, character for
character, with what its own ``is_confusable`` says (the reference: the package's API)."""

from __future__ import annotations

from confusable_homoglyphs import confusables

from synergychat.validation import confusable_prototype, confusable_prototypes


def prototype_by_the_package(char: str) -> str:
    found = confusables.is_confusable(char, greedy=True)
    if not found:
        return char
    glyphs = [glyph["c"].strip("\u200e") for glyph in found[0]["homoglyphs"]]
    if len(glyphs) != 1:
        return char
    (other,) = glyphs
    if len(other) == 1:
        back = confusables.is_confusable(other, greedy=True)
        if back and len(back[0]["homoglyphs"]) == 1:
            return str(min(char, other))
    return str(other)


def test_every_character_of_the_table_maps_as_the_package_says() -> None:
    # Names are mapped a character at a time: the table's few sequences are never asked for.
    characters = [char for char in confusables.confusables_data if len(char) == 1]
    assert len(characters) > 7000  # the whole table, not an empty file
    differ = {char: prototype_by_the_package(char) for char in characters}
    assert {char: other for char, other in differ.items() if other != char} == confusable_prototypes()
    # Sources, prototypes, look-alikes of several characters, and one that is in no list.
    assert confusable_prototype("\u043e") == "o"  # CYRILLIC SMALL LETTER O
    assert confusable_prototype("\u2010") == "-"  # HYPHEN
    assert confusable_prototype("I") == "l"
    assert confusable_prototype("o") == "o"
    assert confusable_prototype("\ufb01") == "fi"  # LATIN SMALL LIGATURE FI
    assert confusable_prototype("\u674e") == "\u674e"
