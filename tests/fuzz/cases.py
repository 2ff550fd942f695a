"""Requests to throw at a role, generated with hypothesis: well-formed HTTP with odd
contents (methods, paths, query strings, headers, bodies), and raw bytes that are not
quite HTTP (a 9,000-byte request line, broken headers, lying lengths, random bytes).

Each case is the exact bytes to send, so a failure can be replayed with a socket.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from urllib.parse import quote

from hypothesis import HealthCheck, Phase, given, seed, settings
from hypothesis import strategies as st

ROLE_PATHS = {
    "api": ["/", "/healthz", "/readyz", "/messages", "/messages/stream"],
    "crawler": ["/", "/healthz", "/readyz", "/stats", "/stats/totals", "/status"],
    "web": ["/", "/healthz", "/readyz", "/app.js", "/style.css", "/favicon.svg", "/index.html"],
}
QUERY_NAMES = ["limit", "before", "after", "keywords", "title", "page", "q", ""]
METHODS = ["GET", "GET", "GET", "POST", "POST", "HEAD", "OPTIONS", "PUT", "DELETE", "PATCH", "TRACE"]
CONTENT_TYPES = [
    "application/json",
    "application/json; charset=utf-8",
    "text/plain;charset=UTF-8",
    "application/x-www-form-urlencoded",
    "multipart/form-data; boundary=xyz",
    "application/octet-stream",
    "",
    "*/*",
    "application/json; charset=latin-1",
]
ORIGINS = ["http://localhost:8080", "https://evil.example", "null", "file://", "http://[::1]:1", "x" * 300]


# Cases are generated once for every role: where a role's own path goes, the bytes say
# PATH_MARK, replaced by one of that role's paths (``path_index``) when sent.
PATH_MARK = b"\x01path\x01"


@dataclass(frozen=True)
class Case:
    template: bytes
    method: str
    # Well-formed requests go over a kept-alive connection; malformed ones each get their own.
    malformed: bool
    path_index: int

    def raw(self, role: str) -> bytes:
        known = ROLE_PATHS[role]
        return self.template.replace(PATH_MARK, known[self.path_index % len(known)].encode())


# Text as clients send it: mostly printable, sometimes anything Unicode holds.
any_text = st.text(max_size=30) | st.text(alphabet=st.characters(codec="utf-8"), max_size=80)
numbers = st.integers(min_value=-(2**70), max_value=2**70).map(str)
# Around the limits, and what int() takes but the api must not ("1_0", " 5", "+5", Arabic digits).
edge_numbers = st.sampled_from(["", "0", "1", "1000", "1001", "9" * 30, "\u0661\u0662", "1_0", " 5", "+5"])
query_values = numbers | any_text | edge_numbers


def percent(text: str) -> str:
    return quote(text, safe="")


KNOWN = st.just(PATH_MARK.decode("latin-1"))
odd_paths = (
    KNOWN.map(lambda p: p + "/")
    | st.tuples(KNOWN, any_text).map(lambda pair: pair[0] + "/" + percent(pair[1]))
    | st.lists(any_text.map(percent), max_size=6).map(lambda parts: "/" + "/".join(parts))
    | st.sampled_from(["/", "//", "/..", "/../etc/passwd", "/%2e%2e/%2e%2e/", "/%00", "/%ZZ", "/a%", "/*"])
    | st.integers(min_value=1000, max_value=6000).map(lambda n: "/" + "a" * n)
)
query_names = st.sampled_from(QUERY_NAMES) | any_text
query_pairs = st.lists(st.tuples(query_names, query_values), min_size=1, max_size=4)
query_strategy = query_pairs.map(
    lambda pairs: "?" + "&".join(f"{percent(name)}={percent(value)}" for name, value in pairs)
) | st.sampled_from(["", "", "?", "?&", "?=", "?limit", "?a=%zz", "?%FF%FE=1"])
# Mostly the role's own paths (two in three), so the cases reach its handlers, not its 404.
path_strategy = st.integers(0, 2).flatmap(lambda pick: odd_paths if pick == 0 else KNOWN)
paths = st.tuples(path_strategy, query_strategy).map("".join)
PATH_INDEX = st.integers(0, 11)


header_values = (
    st.text(alphabet=st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=60)
    | st.sampled_from(ORIGINS)
    | numbers
)


OPTIONAL_HEADERS = {
    "Origin": st.sampled_from(ORIGINS) | header_values,
    "Accept": st.sampled_from(["*/*", "text/event-stream", "application/json", "text/html"]) | header_values,
    "Accept-Encoding": st.sampled_from(["gzip", "br", "gzip;q=0", "identity;q=0", "*"]) | header_values,
    "Last-Event-ID": numbers | header_values,
    "Sec-Fetch-Site": st.sampled_from(["same-origin", "cross-site", "same-site", "none"]) | header_values,
    "Access-Control-Request-Method": st.sampled_from(METHODS) | header_values,
    "Access-Control-Request-Headers": st.sampled_from(["content-type", "x-a, x-b"]) | header_values,
    "Range": st.sampled_from(["bytes=0-10", "bytes=-5", "bytes=100-1", "bytes=0-0,5-", "x"]) | header_values,
    "If-Modified-Since": st.sampled_from(["Mon, 01 Jan 1990 00:00:00 GMT", "yesterday"]) | header_values,
    "If-None-Match": header_values,
    "Cookie": header_values,
    "X-Forwarded-For": header_values,
    "Expect": st.sampled_from(["100-continue", "nonsense"]),
    "Connection": st.sampled_from(["keep-alive", "Upgrade", "TE"]),
    "Upgrade": st.sampled_from(["websocket", "h2c"]),
}
TOKEN = st.text(alphabet="abcdefghijklmnopqrstuvwxyz-ABC0123456789!#$%&'*+.^_`|~", min_size=1, max_size=30)
# A header may come twice: that is allowed, and handlers must cope.
headers = st.lists(
    st.one_of([st.tuples(st.just(name), values) for name, values in OPTIONAL_HEADERS.items()])
    | st.tuples(TOKEN, header_values),
    max_size=5,
)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | any_text,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(any_text, children, max_size=4),
    max_leaves=6,
)
messages = st.fixed_dictionaries(
    {},
    optional={
        "AuthorUsername": any_text | json_values,
        "Text": any_text
        | json_values
        | st.sampled_from(["/stats", "/stats keywords=love", '/stats title="x'])
        | st.integers(3990, 4010).map(lambda n: "x" * n),
        "authorusername": any_text,
        "id": json_values,
    },
)
# A message the api stores, so the fuzzing also runs through the store, the stream and the bot.
plausible = st.fixed_dictionaries(
    {
        "AuthorUsername": st.text(min_size=1, max_size=20),
        "Text": st.text(min_size=1, max_size=80) | st.sampled_from(["/stats", "/stats keywords=love"]),
    }
).map(lambda value: json.dumps(value).encode())
odd_bodies = (
    messages.map(lambda value: json.dumps(value).encode())
    | messages.map(lambda value: json.dumps(value, ensure_ascii=False).encode("utf-8", "surrogatepass"))
    | json_values.map(lambda value: json.dumps(value).encode())
    | st.binary(max_size=300)
    | st.sampled_from([b"", b"{", b"[" * 5000, b'{"a": ' + b"1" * 5000 + b"}", b"\xff\xfe{}", b"null"])
    | st.integers(60_000, 70_000).map(lambda n: b'{"Text": "' + b"x" * n + b'"}')
)
bodies = st.integers(0, 2).flatmap(lambda pick: plausible if pick == 0 else odd_bodies)


METHOD = st.sampled_from(METHODS)
CONTENT_TYPE = st.sampled_from(CONTENT_TYPES)


@st.composite
def well_formed(draw: st.DrawFn) -> Case:
    method = draw(METHOD)
    lines = [f"{method} {draw(paths)} HTTP/1.1", "Host: 127.0.0.1"]
    lines += [f"{name}: {value}" for name, value in draw(headers)]
    body = b""
    if method in ("POST", "PUT", "PATCH", "DELETE") or draw(st.integers(0, 9)) == 0:
        body = draw(bodies)
        content_type = draw(CONTENT_TYPE)
        if content_type:
            lines.append(f"Content-Type: {content_type}")
    if body and draw(st.booleans()):
        # The same body in chunks, as a streaming client sends it.
        size = draw(st.integers(1, max(1, len(body))))
        chunks = [body[i : i + size] for i in range(0, len(body), size)]
        lines.append("Transfer-Encoding: chunked")
        payload = b"".join(b"%x\r\n%s\r\n" % (len(chunk), chunk) for chunk in chunks) + b"0\r\n\r\n"
    else:
        lines.append(f"Content-Length: {len(body)}")
        payload = body
    # Latin-1 keeps PATH_MARK and the percent-encoded path as they are.
    head = "\r\n".join(lines).encode("latin-1") + b"\r\n\r\n"
    return Case(head + payload, method, malformed=False, path_index=draw(PATH_INDEX))


JUNK = st.binary(min_size=1, max_size=40)
MUTATION = st.sampled_from(["none", "none", "cut", "splice"])


def raw_templates() -> st.SearchStrategy[bytes]:
    """Raw requests the server's parser must refuse (or survive)."""
    path = PATH_MARK
    fixed = [
        b"GET /" + b"a" * 9000 + b" HTTP/1.1\r\nHost: x\r\n\r\n",
        b"GET " + path + b" HTTP/1.1\r\nHost: x\r\nX-Big: " + b"b" * 10_000 + b"\r\n\r\n",
        b"GET / HTTP/1.1\r\n" + b"".join(b"X-H%d: v\r\n" % i for i in range(300)) + b"\r\n",
        b"G(T / HTTP/1.1\r\nHost: x\r\n\r\n",
        b"GET / HTTP/9.9\r\nHost: x\r\n\r\n",
        b"GET /\r\n\r\n",
        b"GET / HTTP/1.1\r\nno colon here\r\n\r\n",
        b"GET / HTTP/1.1\r\nBad Name: x\r\n\r\n",
        b"GET / HTTP/1.1\r\nX: a\x00b\r\n\r\n",
        b"GET / HTTP/1.1\r\nX: a\r\n folded\r\n\r\n",
        b"GET / HTTP/1.1\r\nX: \xff\xfe\r\n\r\n",
        b"POST /messages HTTP/1.1\r\nContent-Length: -1\r\n\r\n",
        b"POST /messages HTTP/1.1\r\nContent-Length: abc\r\n\r\n",
        b"POST /messages HTTP/1.1\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!",
        b"POST /messages HTTP/1.1\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        b"POST /messages HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nabc\r\n0\r\n\r\n",
        b"POST /messages HTTP/1.1\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n",
        # A chunk extension of 9,000 bytes.
        b"POST /messages HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n5;"
        + b"e" * 9000
        + b"\r\nhello\r\n0\r\n\r\n",
        b"POST /messages HTTP/1.1\r\nContent-Length: 99999999999999999999999\r\n\r\n",
        b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
        b"CONNECT 127.0.0.1:22 HTTP/1.1\r\n\r\n",
        b"GET http://evil.example/ HTTP/1.1\r\nHost: evil.example\r\n\r\n",
        b"OPTIONS * HTTP/1.1\r\nHost: x\r\n\r\n",
        b"GET / HTTP/1.1\nHost: x\n\n",
        b"GET /%00%ff HTTP/1.1\r\nHost: \xc3\x28\r\n\r\n",
        b"\r\n\r\n\r\n",
        path + b" GET HTTP/1.1\r\n\r\n",
        b"POST " + path + b' HTTP/1.1\r\nContent-Length: 50\r\n\r\n{"half": ',
    ]
    around_junk = [
        (b"", b""),
        (b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03", b""),  # a TLS hello
        (b"GET " + path + b" HTTP/1.1\r\nHost: x\r\n", b"\r\n\r\n"),  # junk for a header
    ]
    with_junk = st.tuples(st.sampled_from(around_junk), JUNK).map(
        lambda pair: pair[0][0] + pair[1] + pair[0][1]
    )
    return st.sampled_from(fixed) | with_junk


TEMPLATES = raw_templates()


@st.composite
def malformed(draw: st.DrawFn) -> Case:
    raw = draw(TEMPLATES)
    # Sometimes cut short, or with junk spliced in: what a broken or hostile client sends.
    mutation = draw(MUTATION)
    if mutation == "cut":
        raw = raw[: draw(st.integers(1, len(raw)))]
    elif mutation == "splice":
        at = draw(st.integers(0, len(raw)))
        raw = raw[:at] + draw(JUNK) + raw[at:]
    return Case(raw, raw.split(b" ", 1)[0].decode("latin-1"), malformed=True, path_index=draw(PATH_INDEX))


# The share of cases that are not well-formed HTTP, in percent: each costs a connection.
MALFORMED_PERCENT = 12


@st.composite
def cases(draw: st.DrawFn) -> Case:
    if draw(st.integers(0, 99)) < MALFORMED_PERCENT:
        return draw(malformed())
    return draw(well_formed())


def generate(count: int, seed_value: int) -> list[Case]:
    """``count`` cases from hypothesis, generated up front (no shrinking: a failure is
    reported with its exact bytes, and replaying those is the reproduction)."""
    collected: list[Case] = []

    @settings(
        max_examples=count,
        database=None,
        deadline=None,
        phases=[Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @seed(seed_value)
    @given(cases())
    def collect(case: Case) -> None:
        collected.append(case)

    collect()
    return collected
