"""Model output made inert: the one place that turns text a model wrote into Markdown that renders
as text. The web app's chat (Gradio's Chatbot: marked, then a sanitizer that keeps <img> and
sandboxed <iframe>) and the clients of the OpenAI-compatible API render Markdown; a model's answer,
a caption or a transcript may carry what a prompt injection told it to write.

- `escape_text`: a short text (a label, a caption, a model id) as plain text inside our Markdown.
- `code_span` / `code_block`: text verbatim in code, which renderers never read as markup.
- `model_text`: a task's text result: escaped when short, a code block when long or multi-line.
- `terminal_text` / `TerminalFilter`: text for a terminal (the CLI): escape sequences (colours,
  cursor moves, OSC 8 hyperlinks, window titles, clipboard writes) removed, other controls shown as
  U+FFFD, a Markdown image as "[image: ALT] (ADDRESS)"; `json_text` keeps C1 controls, bidirectional
  overrides and line separators of a JSON document as \\u escapes.
- `AnswerFilter` / `answer_markdown`: the LLM's answer keeps its Markdown (emphasis, lists, tables,
  code), but no raw HTML (`<` and `&` outside code become entities), no image loads (an image is
  shown as a link with its full address; only the caller's `image` hook, which knows the session's
  own files, may show one), no link whose text hides its address, no `javascript:` link, and no
  mermaid diagram. It filters a stream line by line, so streamed and whole answers come out alike.

Code stays verbatim, so everything hinges on agreeing with the renderer about where code is: fences
are re-emitted at column 0 after a blank line (always a fence, whatever came before), a closing
line is any line a CommonMark or marked renderer could take for one, and an inline code span counts
only within one line. Backticks, brackets and URLs that are not code or links we built are escaped,
so the renderer can form no construct we did not decide on.
"""
from __future__ import annotations

import re
from collections.abc import Callable
from urllib.parse import quote

# (alt text, image address) -> Markdown showing one of the session's own files, or None (not one).
ImageHook = Callable[[str, str], "str | None"]

_PUNCT = frozenset("!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~")
_ESCAPED = frozenset("\\`*_[]#|~$>")          # what escape_text backslash-escapes (the rest is inert inline)
_ENTITIES = {"<": "&lt;", "&": "&amp;"}
# C0/C1 controls (but tab and newline) and the bidirectional overrides that make text read other
# than it is ("Trojan source"): shown as U+FFFD.
_CONTROLS = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u200e\u200f\u202a-\u202e\u2066-\u2069]")
_AUTOLINK_BAITS = re.compile(r"(?i)(?<=https)(?=:)|(?<=http)(?=:)|(?<=ftp)(?=:)|(?<=www)(?=\.)")
_BLOCK_START = re.compile(r"^(\d+)([.)])|^([-+=])")
_URL_STARTS = ("https://", "http://", "ftp://", "www.")
_URL_STOP = frozenset(" \t\n<>\"`[]|\\")
_URL_TRAILING = ".,:;!?'\"*_~"
_LINK = re.compile(r"""
    (?P<bang>!?)\[(?P<text>[^\[\]\n]{0,1000})\]
    \([ \t]*(?:<(?P<angle>[^<>\n]*)>|(?P<dest>(?:[^\s()\\]|\\.|\((?:[^\s()\\]|\\.)*\))*))
    (?:[ \t]+(?:"[^"\n]*"|'[^'\n]*'|\([^()\n]*\)))?[ \t]*\)
""", re.X)
_OPENER = re.compile(r" {0,3}(`{3,}|~{3,})(.*)")
_INFO = re.compile(r"[A-Za-z0-9_+#.-]{1,24}")
SHORT_TEXT = 200            # model_text: longer (or multi-line) text goes into a code block
SHOWN_ADDRESS = 300         # characters of a non-web address (data:, javascript:...) shown


def clean(text: object) -> str:
    """The text with its line ends as \\n, control characters and bidirectional overrides replaced (visibly)."""
    return _CONTROLS.sub("\ufffd", str(text).replace("\r\n", "\n").replace("\r", "\n"))


def escape_text(text: object) -> str:
    """Short text as literal text on one line of Markdown: whitespace collapsed, `<` and `&` as
    entities, Markdown punctuation backslash-escaped, URLs and `www.` broken so no autolink forms."""
    text = " ".join(clean(text).split())
    text = _AUTOLINK_BAITS.sub("\0", text)
    text = _BLOCK_START.sub(lambda m: f"{m.group(1)}\0{m.group(2)}" if m.group(1) else f"\0{m.group(3)}", text)
    out = []
    for c in text:
        if c in _ENTITIES:
            out.append(_ENTITIES[c])
        elif c == "\0":
            out.append("\\")
        elif c in _ESCAPED:
            out.append("\\" + c)
        else:
            out.append(c)
    return "".join(out)


def _longest_run(text: str, char: str) -> int:
    return max((len(m) for m in re.findall(re.escape(char) + "+", text)), default=0)


def code_span(text: object) -> str:
    """Text verbatim in an inline code span (one line; whitespace collapsed)."""
    text = " ".join(clean(text).split())
    if not text:
        return ""
    fence = "`" * (_longest_run(text, "`") + 1)
    pad = " " if text[0] in "` " or text[-1] in "` " else ""
    return f"{fence}{pad}{text}{pad}{fence}"


def code_block(text: object) -> str:
    """Text verbatim in a fenced code block, starting on a line of its own."""
    text = clean(text).rstrip("\n")
    fence = "`" * max(3, _longest_run(text, "`") + 1)
    return f"\n\n{fence}\n{text}\n{fence}\n"


def model_text(text: object, limit: int = 1500) -> str:
    """A model's text result as text: escaped inline when short and on one line, else a code block
    (at most `limit` characters)."""
    text = clean(text).strip()
    if len(text) > limit:
        text = text[:limit - 1].rstrip() + "…"
    if "\n" not in text and len(text) <= SHORT_TEXT:
        return escape_text(text)
    return code_block(text)


def _href(url: str) -> str:
    """A link destination that Markdown cannot misread: no spaces, parentheses, quotes or brackets."""
    return quote(url, safe="-._~:/?#@!$&*+,;=%")


def address(value: str) -> str:
    """An address shown in full: a link (its text the address itself, in code) for http(s), plain
    code for anything else (data:, javascript:, a relative path), which then never loads or runs."""
    value = value.strip()
    if not value:
        return "(no address)"
    low = value.lower()
    if low.startswith(("http://", "https://")) and value.split("://", 1)[1]:
        return f"[{code_span(value)}]({_href(value)})"
    if low.startswith("www."):
        return address("http://" + value)
    if len(value) > SHOWN_ADDRESS:
        value = value[:SHOWN_ADDRESS] + "…"
    return code_span(value)


def _unescape(dest: str) -> str:
    return re.sub(r"\\([!-/:-@\[-`{-~])", r"\1", dest)


class AnswerFilter:
    """Filters an answer as it streams: `feed` returns the Markdown that is settled so far (a
    partial line as far as nothing after it can change it), `close` the rest. `image(alt, src)`
    may return Markdown for an image that is one of the session's own files."""

    def __init__(self, image: ImageHook | None = None):
        self._image = image
        self._fence: tuple[str, int] | None = None   # (fence character, length) while inside code
        self._buf = ""          # received, not yet emitted
        self._mid = False       # the current line was partly emitted already
        self._first = True      # on the answer's first line (a fence elsewhere gets a blank line before it)

    def feed(self, text: str) -> str:
        buf = (self._buf + text).replace("\r\n", "\n")
        held = "\r" if buf.endswith("\r") else ""        # may be the first half of \r\n
        buf = buf[:len(buf) - len(held)].replace("\r", "\n")
        *lines, rest = buf.split("\n")
        out = [self._whole(line) for line in lines]
        part, used = self._line(rest, final=False)
        out.append(part)
        self._mid = self._mid or used > 0
        self._buf = rest[used:] + held
        return "".join(out)

    def close(self) -> str:
        """The rest of the answer, with an open code block closed."""
        *lines, rest = self._buf.replace("\r\n", "\n").replace("\r", "\n").split("\n")
        self._buf = ""
        out = [self._whole(line) for line in lines]
        if rest:
            out.append(self._line(rest, final=True)[0])
        if self._fence is not None:
            char, length = self._fence
            self._fence = None
            ended = "".join(out).endswith("\n") or not (rest or self._mid)
            out.append(("" if ended else "\n") + char * length + "\n")
        return "".join(out)

    def _whole(self, line: str) -> str:
        text = self._line(line, final=True)[0] + "\n"
        self._mid, self._first = False, False
        return text

    # -- one line (or the start of one) --------------------------------------------------------
    def _line(self, line: str, final: bool) -> tuple[str, int]:
        """(Markdown for the line's settled part, characters of `line` it used)."""
        if self._fence is not None:
            return self._code_line(line, final)
        if not self._mid:
            indent = len(line) - len(line.lstrip(" "))
            if not final and indent <= 3 and (line[indent:indent + 1] in ("", "`", "~")):
                return "", 0      # may be a fence: wait for the whole line
            opener = _OPENER.fullmatch(line) if final else None
            if opener and not (opener.group(1)[0] == "`" and "`" in opener.group(2)):
                run = opener.group(1)
                info = opener.group(2).strip().split(" ")[0]
                if not _INFO.fullmatch(info) or info.lower().startswith("mermaid"):
                    info = ""     # no diagram renderer (mermaid) and no odd class names
                self._fence = (run[0], len(run))
                return ("" if self._first else "\n") + run + info, len(line)
        return self._inline(line, final)

    def _code_line(self, line: str, final: bool) -> tuple[str, int]:
        assert self._fence is not None
        char, length = self._fence
        if not self._mid:
            indent = len(line) - len(line.lstrip(" "))
            if not final and indent <= 3 and line[indent:indent + 1] in ("", char):
                return "", 0      # may close the block: wait for the whole line
            # a closing line for CommonMark or for marked (which also takes "```~~" as one)
            if final and re.fullmatch(rf" {{0,3}}{re.escape(char)}{{{length},}}[`~ \t]*", line):
                self._fence = None
                return char * length, len(line)
        return clean(line), len(line)

    def _inline(self, line: str, final: bool) -> tuple[str, int]:
        out: list[str] = []
        i, n = 0, len(line)
        while i < n:
            c = line[i]
            if c == "\\":
                if i + 1 >= n:
                    if not final:
                        break
                    out.append("\\\\")
                    i += 1
                elif line[i + 1] in _PUNCT:     # an escaped character stays one (entities for < and &)
                    out.append(_ENTITIES.get(line[i + 1], line[i:i + 2]))
                    i += 2
                else:
                    out.append("\\\\")
                    i += 1
                continue
            if c == "`":
                end = i
                while end < n and line[end] == "`":
                    end += 1
                close = _closing_run(line, end, end - i)
                if close is not None:
                    out.append(clean(line[i:close]))
                    i = close
                elif not final:
                    break         # the closing run may still come
                else:
                    out.append("\\`" * (end - i))
                    i = end
                continue
            if c == "[" or line.startswith("![", i):
                link = _LINK.match(line, i)
                if link:
                    out.append(self._link(link))
                    i = link.end()
                    continue
                if not final:
                    break         # may become a link once the line is whole
                out.append("!" if c == "!" else "\\[")
                i += 1
                continue
            if c == "!" and i + 1 >= n and not final:
                break
            head = line[i:i + 8].lower()
            start = next((s for s in _URL_STARTS if head.startswith(s)), None)
            if start is not None:
                end = i
                while end < n and line[end] not in _URL_STOP:
                    end += 1
                if end >= n and not final:
                    break         # the address may go on
                url = _trim_url(line[i:end])
                if len(url) <= len(start):
                    url = line[i:i + len(start)]
                    out.append(escape_text(url))
                elif start == "ftp://":
                    out.append(code_span(url))
                else:
                    out.append(address(url))
                i += len(url)
                continue
            if not final and any(s.startswith(line[i:].lower()) for s in _URL_STARTS):
                break             # "htt" at the end may begin an address
            if c in _ENTITIES:
                out.append(_ENTITIES[c])
            elif c == "]":
                out.append("\\]")
            else:
                out.append(clean(c))
            i += 1
        return "".join(out), i

    def _link(self, m: re.Match[str]) -> str:
        text = m.group("text")
        dest = _unescape(m.group("angle") if m.group("angle") is not None else m.group("dest") or "")
        if m.group("bang"):
            own = self._image(text, dest) if self._image is not None else None
            if own is not None:
                return own
            return f"🖼️ {escape_text(text) or 'image'} ({address(dest)})"
        label = escape_text(text)
        if not label or text.strip() == dest.strip():
            return address(dest)
        return f"{label} ({address(dest)})"


def _closing_run(line: str, start: int, length: int) -> int | None:
    """The end of the first run of exactly `length` backticks at or after `start`, or None."""
    for m in re.finditer(r"`+", line[start:]):
        if len(m.group()) == length:
            return start + m.end()
    return None


def _trim_url(url: str) -> str:
    """A bare address without the punctuation that ends its sentence (a `)` only when unbalanced)."""
    while url:
        if url[-1] in _URL_TRAILING or url[-1] == ")" and url.count(")") > url.count("("):
            url = url[:-1]
        else:
            break
    return url


def answer_markdown(text: str, image: ImageHook | None = None) -> str:
    """A whole answer filtered (see AnswerFilter)."""
    f = AnswerFilter(image)
    return f.feed(text) + f.close()


# ---------------------------------------------------------------- terminals

# ECMA-48 sequences: CSI (colours, cursor moves, erase), the string ones ended by BEL or ST (OSC:
# hyperlinks, titles, clipboard; DCS, SOS, PM, APC), and the short ones (ESC c resets the terminal)
_SEQUENCE = re.compile(r"""
    (?:\x1b\[|\x9b)[0-?]*[ -/]*[@-~]
  | (?:\x1b[\]PX^_]|[\x90\x98\x9d\x9e\x9f])[^\x07\x1b\x9c]*(?:\x07|\x1b\\|\x9c)
  | \x1b[ -/]*[0-OQ-WYZ\\`-~]
""", re.X)
_INTRODUCER = re.compile(r"[\x1b\x90\x98\x9b\x9d\x9e\x9f]")
_JSON_UNSAFE = re.compile(r"[\x7f-\x9f\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069]")
HELD = 4096                 # TerminalFilter: most characters held back waiting for a sequence's end


def _terminal_image(m: re.Match[str]) -> str:
    if not m.group("bang"):
        return m.group(0)
    dest = m.group("angle") if m.group("angle") is not None else m.group("dest") or ""
    return f"[image: {' '.join(m.group('text').split()) or 'image'}] ({_unescape(dest)})"


def terminal_text(text: object) -> str:
    """Text a terminal shows as it is: no escape sequence, no control character (but tab and newline),
    no Markdown image (a pipe into a Markdown viewer would load it)."""
    return _LINK.sub(_terminal_image, clean(_SEQUENCE.sub("", str(text))))


def json_text(document: str) -> str:
    """A JSON document (json.dumps with ensure_ascii=False) with the characters that json.dumps leaves
    raw but a terminal obeys or shows misleadingly (C1 controls, DEL, bidi overrides) as \\u escapes:
    they occur only inside strings, so the document means the same."""
    return _JSON_UNSAFE.sub(lambda m: f"\\u{ord(m.group()):04x}", document)


class TerminalFilter:
    """terminal_text over a stream: an escape sequence or a Markdown image that a chunk cuts in two
    is held back until it is whole (or HELD characters wait), so streamed and whole text come out alike."""

    def __init__(self) -> None:
        self._buf = ""

    def feed(self, text: str) -> str:
        buf = self._buf + text
        cut = _settled(buf)
        if len(buf) - cut > HELD:
            cut = len(buf)
        self._buf = buf[cut:]
        return terminal_text(buf[:cut])

    def close(self) -> str:
        buf, self._buf = self._buf, ""
        return terminal_text(buf)


def _settled(buf: str) -> int:
    """How much of `buf` no later text can change: up to an unfinished escape sequence, an image
    still being written on the last line, or a \\r that may be half of \\r\\n."""
    cut = len(buf) - 1 if buf.endswith("\r") else len(buf)
    for m in _INTRODUCER.finditer(buf):
        if not _SEQUENCE.match(buf, m.start()):
            cut = min(cut, m.start())
            break
    line = buf.rfind("\n") + 1
    for m in re.finditer(r"!(?=\[|$)", buf[line:]):
        at = line + m.start()
        if not _LINK.match(buf, at):
            return min(cut, at)
    return cut

