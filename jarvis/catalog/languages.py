"""Languages for translation: names and codes, the pair a request asks for, the source language
detected from the text, and whether a model's recorded languages cover a pair.

Codes come in the forms models use: ISO 639-1 ("fr"; M2M100's "__fr__"), ISO 639-3 ("fra"; Marian's
">>fra<<"), FLORES-200 ("fra_Latn"; NLLB-200, and Marian's ">>cmn_Hans<<"). A code matches a language
when its base (before "_") is one of the language's codes, so one table serves every model family.

Detection is a script and stop-word heuristic, not a model: the catalog's language-identification model
(papluca/xlm-roberta-base-language-detection) is a 1.1 GB download and a model load before a task may
even be chosen, while the script of a text names most non-Latin languages outright and a handful of
function words tell the common Latin-script ones apart. An unsure guess is None, never a coin toss.
"""
from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass


@dataclass(frozen=True)
class Language:
    name: str                  # English name, lower case
    codes: tuple[str, ...]     # ISO 639-1 first (when it has one), then ISO 639-3 codes, individual ones too
    script: str                # the ISO 15924 script models default to (NLLB's zho_Hans, not zho_Hant)

    @property
    def code(self) -> str:
        return self.codes[0]

    @property
    def title(self) -> str:
        return self.name.capitalize()


# (name, codes, script); the ISO 639-3 list names the individual language NLLB uses (arb, pes, swh...)
_TABLE = [
    ("english", "en eng", "Latn"), ("french", "fr fra fre", "Latn"), ("german", "de deu ger", "Latn"),
    ("spanish", "es spa", "Latn"), ("italian", "it ita", "Latn"), ("portuguese", "pt por", "Latn"),
    ("dutch", "nl nld dut", "Latn"), ("chinese", "zh zho chi cmn", "Hans"), ("japanese", "ja jpn", "Jpan"),
    ("korean", "ko kor", "Hang"), ("russian", "ru rus", "Cyrl"), ("ukrainian", "uk ukr", "Cyrl"),
    ("arabic", "ar ara arb", "Arab"), ("hindi", "hi hin", "Deva"), ("bengali", "bn ben", "Beng"),
    ("turkish", "tr tur", "Latn"), ("polish", "pl pol", "Latn"), ("romanian", "ro ron rum", "Latn"),
    ("czech", "cs ces cze", "Latn"), ("greek", "el ell gre", "Grek"), ("hebrew", "he heb", "Hebr"),
    ("persian", "fa fas per pes", "Arab"), ("swedish", "sv swe", "Latn"), ("danish", "da dan", "Latn"),
    ("norwegian", "no nor nob nb", "Latn"), ("finnish", "fi fin", "Latn"), ("hungarian", "hu hun", "Latn"),
    ("vietnamese", "vi vie", "Latn"), ("thai", "th tha", "Thai"), ("indonesian", "id ind", "Latn"),
    ("malay", "ms msa may zsm", "Latn"), ("swahili", "sw swa swh", "Latn"), ("tamil", "ta tam", "Taml"),
    ("urdu", "ur urd", "Arab"), ("catalan", "ca cat", "Latn"), ("bulgarian", "bg bul", "Cyrl"),
    ("croatian", "hr hrv", "Latn"), ("serbian", "sr srp", "Cyrl"), ("slovak", "sk slk slo", "Latn"),
    ("estonian", "et est ekk", "Latn"), ("latvian", "lv lav lvs", "Latn"), ("lithuanian", "lt lit", "Latn"),
    ("georgian", "ka kat geo", "Geor"), ("armenian", "hy hye arm", "Armn"), ("zulu", "zu zul", "Latn"),
    ("afrikaans", "af afr", "Latn"), ("tagalog", "tl tgl fil", "Latn"), ("icelandic", "is isl ice", "Latn"),
]
LANGUAGES: tuple[Language, ...] = tuple(Language(n, tuple(c.split()), s) for n, c, s in _TABLE)
_BY_KEY = {key: lang for lang in LANGUAGES for key in (lang.name, *lang.codes)}
ENGLISH, FRENCH = _BY_KEY["en"], _BY_KEY["fr"]
_ALSO = {"mandarin": "chinese", "farsi": "persian", "castilian": "spanish", "filipino": "tagalog"}
_FLORES = re.compile(r"^([a-z]{2,3})[_-]([A-Za-z]{4})$")
_MARKS = re.compile(r"^(?:>>|__)?(.+?)(?:<<|__)?$")   # >>fra<< (Marian), __fr__ (M2M100), fra_Latn (NLLB)


def language(value: str | None) -> Language | None:
    """The language a name or code means ("German", "de", "deu", "deu_Latn", ">>deu<<"); None if unknown."""
    if not value:
        return None
    key = _MARKS.sub(r"\1", str(value).strip()).lower()
    key = _ALSO.get(key, key)
    found = _FLORES.match(key)
    return _BY_KEY.get(found.group(1) if found else key)


def matches(code: str, lang: Language) -> bool:
    """Whether a model's language code stands for `lang` ("cmn_Hans" for Chinese, "pes_Arab" for Persian)."""
    base = _MARKS.sub(r"\1", code.strip()).lower().replace("-", "_").split("_")[0]
    return base in lang.codes


def best_code(codes: Iterable[str], lang: Language) -> str | None:
    """The model's code for `lang`: one of `codes` in the language's usual script first ("zho_Hans" over
    "zho_Hant", ">>cmn_Hans<<" over ">>cmn_Hant<<"), then any that matches; None when it lacks it."""
    fitting = [c for c in codes if matches(c, lang)]
    if not fitting:
        return None
    plain = [c for c in fitting if not re.search(r"[_-][A-Za-z]{4}", c)]
    scripted = [c for c in fitting if lang.script.lower() in c.lower()]
    return (scripted or plain or fitting)[0]


def covers(listed: Iterable[str], lang: Language | None) -> bool | None:
    """Whether a recorded language list holds `lang`: None when either is unknown ("mul" = many, unnamed)."""
    codes = list(listed)
    if lang is None or not codes or "mul" in codes:
        return None
    return any(matches(c, lang) for c in codes)


# ---------------------------------------------------------------- what the request asks for

_INSTRUCTION = re.compile(r"^\s*translate\b[^:\n]{0,60}:\s*", re.IGNORECASE)
_TARGET = re.compile(r"\b(?:in)?to\s+([a-z]+)", re.IGNORECASE)
_SOURCE = re.compile(r"\bfrom\s+([a-z]+)|^\s*translate\s+([a-z]+)\s+(?:in)?to\b", re.IGNORECASE)


@dataclass(frozen=True)
class Request:
    """A translation request: the text itself and the languages named or detected."""
    body: str
    source: Language | None
    target: Language | None
    source_detected: bool = False    # the source was guessed from the text, not named


def read_request(text: str, source: str = "", target: str = "") -> Request:
    """Split "Translate from English to German: TEXT" into its languages and TEXT; `source`/`target`
    (run options) win over the instruction; a source named nowhere is detected from TEXT."""
    found = _INSTRUCTION.match(text)
    instruction = found.group(0) if found else ""
    body = text[found.end():].strip() if found else text.strip()

    def named(match: re.Match[str] | None) -> Language | None:
        return language(next((g for g in match.groups() if g), None)) if match else None
    src = language(source) or named(_SOURCE.search(instruction))
    tgt = language(target) or named(_TARGET.search(instruction))
    if src is not None:
        return Request(body, src, tgt)
    return Request(body, detect(body), tgt, source_detected=True)


# ---------------------------------------------------------------- detection

_SCRIPTS = [  # (pattern, language): the first script with enough letters in the text decides
    (r"[\u3040-\u30ff]", "ja"), (r"[\uac00-\ud7af\u1100-\u11ff]", "ko"), (r"[\u4e00-\u9fff]", "zh"),
    (r"[\u0400-\u04ff]", "ru"), (r"[\u0600-\u06ff]", "ar"), (r"[\u0590-\u05ff]", "he"), (r"[\u0370-\u03ff]", "el"),
    (r"[\u0900-\u097f]", "hi"), (r"[\u0980-\u09ff]", "bn"), (r"[\u0e00-\u0e7f]", "th"), (r"[\u0b80-\u0bff]", "ta"),
    (r"[\u10a0-\u10ff]", "ka"), (r"[\u0530-\u058f]", "hy"),
]
_STOPWORDS = {
    "en": "the and is are of to in that it with for you this was have not be on at",
    "fr": "le la les des est et un une du que qui dans pour pas sur au avec je vous ce",
    "de": "der die das und ist nicht ein eine ich sie mit den dem zu von auf für es sich",
    "es": "el la los las es y un una que de en por con para del se no está muy",
    "it": "il lo la gli le è e un una che di non per con sono del della questo molto",
    "pt": "o a os as é e um uma que de não para com do da em você muito está",
    "nl": "de het een en is niet van ik je dat die op te met zijn voor",
}
_STOP_SETS = {code: set(words.split()) for code, words in _STOPWORDS.items()}
_WORD = re.compile(r"[^\W\d_]+", re.UNICODE)


def detect(text: str) -> Language | None:
    """The language of `text` by its script, or for Latin script by its commonest function words;
    None when the text gives too little to tell."""
    letters = [ch for ch in text if ch.isalpha()]
    if not letters:
        return None
    for pattern, code in _SCRIPTS:
        share = len(re.findall(pattern, text)) / len(letters)
        if share >= 0.3 or (code in ("ja", "ko") and share >= 0.05):  # Japanese mixes kana into Han
            if code == "ru" and re.search(r"[іїєґ]", text.lower()):
                return _BY_KEY["uk"]
            if code == "ar" and re.search(r"[پچژگ]", text):
                return _BY_KEY["fa"]
            return _BY_KEY[code]
    words = [w.lower() for w in _WORD.findall(text)]
    scores = {code: sum(w in stop for w in words) for code, stop in _STOP_SETS.items()}
    ranked = sorted(scores.items(), key=lambda kv: -kv[1])
    (best, top), (_, second) = ranked[0], ranked[1]
    if top == 0 or top == second:
        return None
    return _BY_KEY[best]
