"""Send raw requests to a server and read its answers: many at once over kept-alive
connections, each malformed one on a connection of its own.

A minimal HTTP/1.1 reader of our own, because a client library would refuse to send
(or to read) exactly the bytes the fuzz cases are made of.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from .cases import Case

EXCHANGE_TIMEOUT_SECONDS = 20.0


@dataclass
class Answer:
    status: int
    headers: dict[str, str]
    body: bytes | None  # None: a stream we hung up on, or no body to a HEAD


@dataclass
class Outcome:
    case: Case
    answer: Answer | None  # None: the server closed the connection without answering
    error: str = ""


@dataclass
class Tally:
    outcomes: list[Outcome] = field(default_factory=list)

    def statuses(self) -> dict[int | None, int]:
        counts: dict[int | None, int] = {}
        for outcome in self.outcomes:
            status = outcome.answer.status if outcome.answer else None
            counts[status] = counts.get(status, 0) + 1
        return dict(sorted(counts.items(), key=lambda item: (item[0] is None, item[0] or 0)))


class NoAnswer(Exception):
    pass


async def read_answer(reader: asyncio.StreamReader, method: str) -> tuple[Answer, bool]:
    """One response (after any 1xx); and whether the connection can carry another."""
    while True:
        try:
            status_line = await reader.readuntil(b"\r\n")
        except asyncio.IncompleteReadError as exc:
            raise NoAnswer(f"connection closed after {exc.partial[:80]!r}") from None
        parts = status_line.split(b" ", 2)
        status = int(parts[1])
        headers: dict[str, str] = {}
        while (line := await reader.readuntil(b"\r\n")) != b"\r\n":
            name, _, value = line.decode("latin-1").partition(":")
            headers[name.strip().lower()] = value.strip()
        if not 100 <= status < 200:
            break
    reusable = headers.get("connection", "").lower() != "close" and not parts[0].endswith(b"/1.0")
    if method == "HEAD" or status in (204, 304):
        return Answer(status, headers, None), reusable
    if "text/event-stream" in headers.get("content-type", ""):
        return Answer(status, headers, None), False
    if headers.get("transfer-encoding", "").lower() == "chunked":
        chunks = []
        while size := int((await reader.readuntil(b"\r\n")).split(b";")[0], 16):
            chunks.append(await reader.readexactly(size))
            await reader.readuntil(b"\r\n")
        while await reader.readuntil(b"\r\n") != b"\r\n":
            pass  # trailers
        return Answer(status, headers, b"".join(chunks)), reusable
    if "content-length" in headers:
        return Answer(status, headers, await reader.readexactly(int(headers["content-length"]))), reusable
    return Answer(status, headers, await reader.read()), False


class Connection:
    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.streams: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None

    async def exchange(self, raw: bytes, method: str) -> Answer:
        if self.streams is None:
            self.streams = await asyncio.open_connection(self.host, self.port)
        reader, writer = self.streams
        writer.write(raw)
        try:
            answer, reusable = await read_answer(reader, method)
        except BaseException:
            self.close()
            raise
        if not reusable:
            self.close()
        return answer

    def close(self) -> None:
        if self.streams is not None:
            self.streams[1].transport.abort()
            self.streams = None


async def send_malformed(host: str, port: int, raw: bytes, method: str) -> Answer:
    reader, writer = await asyncio.open_connection(host, port)
    try:
        writer.write(raw)
        # Say we are done: a request cut short is answered (or dropped), not waited for.
        writer.write_eof()
        answer, _ = await read_answer(reader, method)
        return answer
    finally:
        writer.transport.abort()


async def fire(host: str, port: int, role: str, cases: Sequence[Case], concurrency: int = 16) -> Tally:
    """Send every case, ``concurrency`` at a time, and record what came back."""
    queue: asyncio.Queue[Case] = asyncio.Queue()
    for case in cases:
        queue.put_nowait(case)
    tally = Tally()

    async def worker() -> None:
        connection = Connection(host, port)
        try:
            while not queue.empty():
                case = queue.get_nowait()
                raw = case.raw(role)
                try:
                    if case.malformed:
                        sending = send_malformed(host, port, raw, case.method)
                    else:
                        sending = connection.exchange(raw, case.method)
                    answer = await asyncio.wait_for(sending, EXCHANGE_TIMEOUT_SECONDS)
                    tally.outcomes.append(Outcome(case, answer))
                except NoAnswer as exc:
                    tally.outcomes.append(Outcome(case, None, str(exc)))
                except (TimeoutError, OSError, ValueError, IndexError) as exc:
                    connection.close()
                    tally.outcomes.append(Outcome(case, None, f"{type(exc).__name__}: {exc}"))
        finally:
            connection.close()

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return tally


def json_error_problem(answer: Answer) -> str | None:
    """What is wrong with a 4xx body of the api or the crawler, or None: it must be
    JSON with an ``error``."""
    if answer.body is None:
        return None
    try:
        body = json.loads(answer.body)
    except ValueError:
        return f"a {answer.status} that is not JSON: {answer.body[:120]!r}"
    if not isinstance(body, dict) or not isinstance(body.get("error"), str):
        return f"a {answer.status} without an error: {answer.body[:120]!r}"
    return None


def is_readiness_refusal(raw: bytes, answer: Answer) -> bool:
    """A 503 from /readyz is its job (not ready: a check timed out on a loaded machine),
    not a server error; anything else there is."""
    target = raw.split(b"\r\n", 1)[0].split(b" ")
    path = target[1].split(b"?", 1)[0] if len(target) > 1 else b""
    return answer.status == 503 and path == b"/readyz"


def readiness_refusals(tally: Tally, role: str) -> int:
    return sum(
        1
        for outcome in tally.outcomes
        if outcome.answer is not None and is_readiness_refusal(outcome.case.raw(role), outcome.answer)
    )


def tracebacks(log: str) -> list[str]:
    """Python tracebacks in a process's log (a fuzzed path may well say "Traceback")."""
    lines = log.splitlines()
    return [
        "\n".join(lines[max(0, number - 3) : number + 30])
        for number, line in enumerate(lines)
        if line.startswith("Traceback (most recent call last):")
    ]


def problems(tally: Tally, role: str, json_errors: bool, answered: Callable[[Case], bool]) -> list[str]:
    found = []
    for outcome in tally.outcomes:
        answer, raw = outcome.answer, outcome.case.raw(role)[:300]
        if answer is None:
            if answered(outcome.case):
                found.append(f"no answer ({outcome.error}) to {raw!r}")
            continue
        if is_readiness_refusal(raw, answer):
            continue  # its body is the readiness report, not an error
        if answer.status >= 500:
            found.append(f"{answer.status} {answer.body!r} to {raw!r}")
        elif json_errors and answer.status >= 400 and (problem := json_error_problem(answer)):
            found.append(f"{problem} to {raw!r}")
    return found
