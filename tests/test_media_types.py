"""The one table of media suffixes and MIME types, and the one text shortener."""
from jarvis.files.media_types import MEDIA_SUFFIXES, MIME_SUFFIXES, SUFFIX_TYPES, all_suffixes, media_type
from jarvis.shorten import shorten


def test_every_mime_type_maps_to_a_known_suffix_of_its_kind():
    for mime, suffix in MIME_SUFFIXES.items():
        assert suffix in SUFFIX_TYPES, f"{mime} -> {suffix}, which no media type lists"
        major = mime.split("/")[0]
        # audio/webm is the one container named for audio that Jarvis treats as video
        assert SUFFIX_TYPES[suffix] == major or (mime, SUFFIX_TYPES[suffix]) == ("audio/webm", "video"), mime


def test_media_type_from_names_and_paths():
    assert media_type("photo.JPG") == "image" and media_type("/tmp/a.b/clip.wav") == "audio"
    assert media_type("https://example.com/v.webm") == "video"
    assert media_type("notes.txt") is None and media_type("README") is None
    assert all_suffixes() == sorted(s for suffixes in MEDIA_SUFFIXES.values() for s in suffixes)


def test_shorten_folds_whitespace_and_cuts_at_a_word():
    assert shorten("  a\n  short\ttext ", 50) == "a short text"
    long = "the quick brown fox jumps over the lazy dog " * 5
    cut = shorten(long, 40)
    assert len(cut) <= 40 and cut.endswith("...") and cut == "the quick brown fox jumps over the..."
    url = "https://example.com/" + "x" * 200
    assert shorten(url, 100) == url[:97] + "..."      # no space to cut at: a hard cut
    assert shorten(ValueError("bad\nvalue"), 100) == "bad value"
