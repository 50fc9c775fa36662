"""containerd's filter syntax (``pkg/filters``): what ``images ls``, ``images check`` and
``content ls`` take as ``FILTER...`` arguments.

A filter is a comma-separated list of selectors that must all match; several filters
match when any of them does (:func:`parse_all`)::

    selectors := selector ("," selector)*
    selector  := fieldpath (operator value)
    fieldpath := field ("." field)*
    field     := quoted | [A-Za-z0-9_]+
    operator  := "==" | "!=" | "~="
    value     := quoted | [^\\s,]+
    quoted    := a Go string literal in "..."; after ~= also /.../ or |...|

``labels."k"==v`` tests a label, ``name~=^docker`` a regular expression (searched, not
anchored), ``labels.k`` without an operator only that the field is present.  Which field
paths exist is the object's business: a store passes an *adaptor* that answers
``(value, present)`` for a field path (see :func:`check_map`).

The scanner and parser follow containerd 1.6 token by token, so a filter ctr accepts means
the same here and one it refuses is refused.  Where ctrpy differs: the regular
expressions are Python's (RE2's syntax is nearly a subset), and one that does not compile
is an error when the filter is parsed (ctr logs it and matches nothing).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from ctrpy.errors import FilterError

Adaptor = Callable[[Sequence[str]], tuple[str, bool]]
"""A field path -> (its value, whether the object has it)."""


class Filter(Protocol):
    def match(self, adaptor: Adaptor) -> bool: ...


class _Always:
    def match(self, adaptor: Adaptor) -> bool:
        return True

    def __repr__(self) -> str:
        return "ALWAYS"


ALWAYS: Filter = _Always()


@dataclass(frozen=True)
class Selector:
    fieldpath: tuple[str, ...]
    operator: str  # "?" (present), "==", "!=", "~="
    value: str = ""
    regex: re.Pattern[str] | None = field(default=None, compare=False)

    def match(self, adaptor: Adaptor) -> bool:
        value, present = adaptor(self.fieldpath)
        if self.operator == "?":
            return present
        if self.operator == "==":
            return present and value == self.value
        if self.operator == "!=":
            return value != self.value
        assert self.regex is not None
        return self.regex.search(value) is not None


@dataclass(frozen=True)
class All:
    """Every selector matches (one filter: ``a,b``)."""

    selectors: tuple[Filter, ...]

    def match(self, adaptor: Adaptor) -> bool:
        return all(s.match(adaptor) for s in self.selectors)


@dataclass(frozen=True)
class Any:
    """At least one filter matches (several filter arguments)."""

    filters: tuple[Filter, ...]

    def match(self, adaptor: Adaptor) -> bool:
        return any(f.match(adaptor) for f in self.filters)


def check_map(fieldpath: Sequence[str], mapping: Mapping[str, str]) -> tuple[str, bool]:
    """containerd's ``checkMap``: the rest of the path, joined by dots, is the key
    (``labels.a.b`` is the label ``a.b``, as is ``labels."a.b"``)."""
    if not mapping:
        return "", False
    key = ".".join(fieldpath)
    return (mapping[key], True) if key in mapping else ("", False)


def parse(text: str) -> Filter:
    """One filter argument; the empty string matches everything.  Raises FilterError."""
    if text == "":
        return ALWAYS
    return _Parser(text).parse()


def parse_all(texts: Iterable[str]) -> Filter:
    """Several filter arguments: an object matches when any of them matches; none given
    matches everything."""
    return any_of(parse(t) for t in texts)


def any_of(parsed: Iterable[Filter]) -> Filter:
    """Filters already parsed, combined as :func:`parse_all` combines their texts."""
    found = tuple(parsed)
    return Any(found) if found else ALWAYS


# --------------------------------------------------------------------------- the scanner
_EOF = "EOF"
_QUOTED, _VALUE, _FIELD, _SEPARATOR, _OPERATOR, _ILLEGAL = "quoted", "value", "field", "separator", "operator", "illegal"
_GO_SPACE = frozenset("\t\n\v\f\r \x85\xa0")
_ESCAPES = frozenset("abfnrtv\\")
_REPLACEMENT = "\ufffd"


def _is_space(ch: str) -> bool:
    return ch in _GO_SPACE or (ord(ch) >= 0x100 and ch.isspace())


def _is_field_rune(ch: str) -> bool:
    return ch == "_" or ("A" <= ch <= "Z") or ("a" <= ch <= "z") or ("0" <= ch <= "9")


def _is_value_rune(ch: str) -> bool:
    return ch != "," and not _is_space(ch) and ch.isprintable()


def _digit_value(ch: str) -> int:
    if "0" <= ch <= "9":
        return ord(ch) - ord("0")
    if "a" <= ch <= "f":
        return ord(ch) - ord("a") + 10
    if "A" <= ch <= "F":
        return ord(ch) - ord("A") + 10
    return 16


class _Scanner:
    """containerd's filters/scanner.go: positions are character offsets."""

    def __init__(self, text: str) -> None:
        self.input = text
        self.pos = 0
        self.ppos = 0
        self.value = False
        self.err = ""

    def next(self) -> str:
        if self.pos >= len(self.input):
            return _EOF
        self.pos = self.ppos
        if self.ppos >= len(self.input):
            return _EOF
        ch = self.input[self.ppos]
        self.ppos += 1
        # Go's utf8.RuneError: bytes that were not UTF-8 (surrogate-escaped argv), or U+FFFD itself
        if "\ud800" <= ch <= "\udfff" or ch == _REPLACEMENT:
            self.error("rune error")
            return _ILLEGAL
        if ch == "\0":
            self.error("unexpected null")
            return _ILLEGAL
        return ch

    def peek(self) -> str:
        pos, ppos = self.pos, self.ppos
        ch = self.next()
        self.pos, self.ppos = pos, ppos
        return ch

    def scan(self) -> tuple[int, str, str]:
        ch = self.next()
        pos = self.pos
        while True:
            if ch in (_EOF, _ILLEGAL):
                return self.pos, ch, ""
            if ch in "/|\"":
                tok = _QUOTED if self._quoted(ch) else _ILLEGAL
                return pos, tok, self.input[pos:self.ppos]
            if ch in ",.":
                self.value = False
                return pos, _SEPARATOR, self.input[pos:self.ppos]
            if ch in "=!~":
                while self.peek() in ("=", "!", "~"):
                    self.next()
                self.value = True
                return pos, _OPERATOR, self.input[pos:self.ppos]
            if _is_space(ch):
                ch = self.next()
                pos = self.pos
                continue
            if self.value:
                self._while(_is_value_rune)
                self.value = False
                return pos, _VALUE, self.input[pos:self.ppos]
            if _is_field_rune(ch):
                self._while(_is_field_rune)
                return pos, _FIELD, self.input[pos:self.ppos]
            return self.pos, ch, ""

    def _while(self, accept: Callable[[str], bool]) -> None:
        while True:
            ch = self.peek()
            if ch in (_EOF, _ILLEGAL) or not accept(ch):
                return
            self.next()

    def _quoted(self, quote: str) -> bool:
        legal = True
        ch = self.next()
        while ch != quote:
            if ch in ("\n", _EOF, _ILLEGAL):
                self.error("quoted literal not terminated")
                return False
            if ch == "\\":
                ch, ok = self._escape(quote)
                legal = legal and ok
            else:
                ch = self.next()
        return legal

    def _escape(self, quote: str) -> tuple[str, bool]:
        ch = self.next()
        if ch in _ESCAPES or ch == quote:
            return self.next(), True
        if ch in "01234567":
            return self._digits(ch, 8, 3)
        if ch in ("x", "u", "U"):
            return self._digits(self.next(), 16, {"x": 2, "u": 4, "U": 8}[ch])
        self.error("illegal escape sequence")
        return ch, False

    def _digits(self, ch: str, base: int, n: int) -> tuple[str, bool]:
        while n > 0 and len(ch) == 1 and _digit_value(ch) < base:
            ch = self.next()
            n -= 1
        if n > 0:
            self.error("illegal numeric escape sequence")
            return ch, False
        return ch, True

    def error(self, message: str) -> None:
        if not self.err:
            self.err = message


# --------------------------------------------------------------------------- the parser
class _Parser:
    """containerd's filters/parser.go."""

    def __init__(self, text: str) -> None:
        self.input = text
        self.scanner = _Scanner(text)

    def parse(self) -> Filter:
        return self.selectors()

    def fail(self, pos: int, reason: str) -> FilterError:
        return FilterError(self.input, pos, reason)

    def selectors(self) -> Filter:
        found = [self.selector()]
        while True:
            ch = self.scanner.peek()
            if ch == ",":
                pos, tok, _ = self.scanner.scan()
                if tok != _SEPARATOR:
                    raise self.fail(pos, "expected a separator")
                found.append(self.selector())
            elif ch == _EOF:
                return All(tuple(found))
            else:
                shown = _REPLACEMENT if ch == _ILLEGAL else ch  # Go prints an illegal rune so
                raise self.fail(self.scanner.ppos, f"unexpected input: {shown}")

    def selector(self) -> Selector:
        path = self.fieldpath()
        if self.scanner.peek() in (",", _EOF):
            return Selector(path, "?")
        op = self.operator()
        pos, value = self.value(alt_quotes=op == "~=")
        if op != "~=":
            return Selector(path, op, value)
        try:
            regex = re.compile(value)
        except re.error as e:
            raise self.fail(pos, f"invalid regular expression {value!r}: {e}") from None
        return Selector(path, op, value, regex)

    def fieldpath(self) -> tuple[str, ...]:
        path = [self.field()]
        while self.scanner.peek() == ".":
            pos, tok, _ = self.scanner.scan()
            if tok != _SEPARATOR:
                raise self.fail(pos, "expected a field separator (`.`)")
            path.append(self.field())
        return tuple(path)

    def field(self) -> str:
        pos, tok, text = self.scanner.scan()
        if tok == _FIELD:
            return text
        if tok == _QUOTED:
            return self.unquote(pos, text, alt_quotes=False)
        if tok == _ILLEGAL:
            raise self.fail(pos, self.scanner.err)
        raise self.fail(pos, "expected field or quoted")

    def operator(self) -> str:
        pos, tok, text = self.scanner.scan()
        if tok == _OPERATOR:
            if text in ("==", "!=", "~="):
                return text
            raise self.fail(pos, f'unsupported operator "{text}"')
        if tok == _ILLEGAL:
            raise self.fail(pos, self.scanner.err)
        raise self.fail(pos, 'expected an operator ("=="|"!="|"~=")')

    def value(self, *, alt_quotes: bool) -> tuple[int, str]:
        pos, tok, text = self.scanner.scan()
        if tok in (_VALUE, _FIELD):
            return pos, text
        if tok == _QUOTED:
            return pos, self.unquote(pos, text, alt_quotes=alt_quotes)
        if tok == _ILLEGAL:
            raise self.fail(pos, self.scanner.err)
        raise self.fail(pos, "expected value or quoted")

    def unquote(self, pos: int, text: str, *, alt_quotes: bool) -> str:
        if not alt_quotes and text[0] != '"':
            raise self.fail(pos, "invalid quote encountered")
        try:
            return _unquote(text)
        except ValueError:
            raise self.fail(pos, "unquoting failed: quote syntax error") from None


def _unquote(text: str) -> str:
    """Go's strconv.Unquote for "..." literals, with / and | as further double quotes."""
    if len(text) < 2 or text[-1] != text[0] or "\n" in text:
        raise ValueError(text)
    quote, body = text[0], text[1:-1]
    if "\\" not in body and quote not in body:
        return body
    out = bytearray()
    i = 0
    while i < len(body):
        c = body[i]
        if c == quote:
            raise ValueError(text)
        if c != "\\":
            out += c.encode("utf-8", "surrogateescape")
            i += 1
            continue
        if i + 1 >= len(body):
            raise ValueError(text)
        e = body[i + 1]
        i += 2
        simple = {"a": "\a", "b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t", "v": "\v", "\\": "\\"}
        if e in simple:
            out += simple[e].encode()
        elif e in ("x", "u", "U"):
            n = {"x": 2, "u": 4, "U": 8}[e]
            digits = body[i:i + n]
            if len(digits) < n or any(_digit_value(d) >= 16 for d in digits):
                raise ValueError(text)
            i += n
            v = int(digits, 16)
            if e == "x":
                out.append(v)
            elif v > 0x10FFFF:
                raise ValueError(text)
            else:  # a surrogate is not a rune: Go encodes it as U+FFFD
                out += (chr(v) if not 0xD800 <= v <= 0xDFFF else _REPLACEMENT).encode()
        elif e in "01234567":
            digits = body[i - 1:i + 2]
            if len(digits) < 3 or any(d not in "01234567" for d in digits):
                raise ValueError(text)
            i += 2
            v = int(digits, 8)
            if v > 255:
                raise ValueError(text)
            out.append(v)
        elif e in ("'", '"', "|", "/"):
            if e != quote:
                raise ValueError(text)
            out += e.encode()
        else:
            raise ValueError(text)
    return out.decode("utf-8", "surrogateescape")
