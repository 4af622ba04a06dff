"""The hash chain: what is hashed, how, and how a chain is checked. No database here.

Each record's hash is SHA-256 (or HMAC-SHA256 with ``[audit] hmac_key``) over the previous
record's hash followed by the record's canonical JSON: its fields with sorted keys and no
whitespace. The position (``seq``) is not hashed: the links fix the order, so two records that
swap places are reported as out of order rather than changed.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
from collections.abc import Iterable, Iterator
from dataclasses import InitVar, dataclass, field
from datetime import UTC, datetime
from typing import Any

GENESIS = "0" * 64
SHA256, HMAC_SHA256 = "sha256", "hmac-sha256"
ANCHOR = "anchor"
MAX_ACTOR, MAX_TARGET = 250, 2000
HASHED_FIELDS = ("recorded_at", "kind", "actor", "action", "source", "remote_addr", "target",
                 "details", "alg")
# Keys whose values are secrets, whatever hook they came from (the core masks them already;
# this is the second lock on the door).
_SENSITIVE = re.compile(r"pass(word|wd)?|secret|token|api[_-]?key|private[_-]?key|credential|"
                        r"auth|fernet", re.IGNORECASE)
_MASK = "***"


def utc_timestamp(moment: datetime | None = None) -> str:
    """Fixed-width UTC timestamps: they sort as text on every database."""
    moment = (moment or datetime.now(UTC)).astimezone(UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def canonical_json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=True,
                      default=str)


def scrub(value: Any) -> Any:
    """A JSON-safe copy of ``value`` with the value of every secret-looking key masked."""
    if isinstance(value, dict):
        return {str(key): (_MASK if _SENSITIVE.search(str(key)) and item not in (None, "")
                           else scrub(item)) for key, item in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [scrub(item) for item in value]
    if value is None or isinstance(value, bool | int | float | str):
        return value
    return str(value)


@dataclass
class Entry:
    """One audit record before it has a place in the chain."""

    kind: str
    actor: str
    action: str
    target: str
    details: dict[str, Any] = field(default_factory=dict)
    source: str = ""
    remote_addr: str = ""
    recorded_at: str = field(default_factory=utc_timestamp)
    # flow's own state-change hooks pass identifiers, states and numbers under fixed keys:
    # already JSON as they are, with nothing to mask, so they skip the scrub and round trip.
    plain: InitVar[bool] = False
    details_json: str = field(init=False, repr=False, compare=False)

    def __post_init__(self, plain: bool) -> None:
        self.actor = str(self.actor)[:MAX_ACTOR]
        self.target = str(self.target)[:MAX_TARGET]
        self.source = str(self.source or "")[:20]
        self.remote_addr = str(self.remote_addr or "")[:100]
        if plain:
            self.details_json = canonical_json(self.details)
            return
        # Through JSON once: what is hashed is exactly what is read back later.
        self.details_json = canonical_json(scrub(self.details))
        self.details = json.loads(self.details_json)

    def content_json(self, alg: str) -> str:
        """``canonical_json(record.content())`` of the record this entry becomes, assembled
        from its parts so that the details are not serialized again (the keys in sorted
        order, as ``canonical_json`` writes them)."""
        text = json.dumps
        return (f'{{"action":{text(self.action)},"actor":{text(self.actor)},'
                f'"alg":{text(alg)},"details":{self.details_json},"kind":{text(self.kind)},'
                f'"recorded_at":{text(self.recorded_at)},'
                f'"remote_addr":{text(self.remote_addr)},"source":{text(self.source)},'
                f'"target":{text(self.target)}}}')


@dataclass
class Record:
    """A record in the chain, as stored."""

    seq: int
    recorded_at: str
    kind: str
    actor: str
    action: str
    source: str
    remote_addr: str
    target: str
    details: dict[str, Any]
    alg: str
    prev_hash: str
    record_hash: str

    def content(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in HASHED_FIELDS}

    def as_dict(self) -> dict[str, Any]:
        return {"seq": self.seq, **self.content(), "prev_hash": self.prev_hash,
                "hash": self.record_hash}

    def label(self) -> str:
        return (f"record {self.seq} ({self.recorded_at}, {self.action} by {self.actor!r} on "
                f"{self.target!r})")


def digest(prev_hash: str, content: dict[str, Any], key: str) -> str:
    return _digest_json(prev_hash, canonical_json(content), content.get("alg"), key)


def _digest_json(prev_hash: str, content_json: str, alg: Any, key: str) -> str:
    message = (prev_hash + content_json).encode()
    if alg == HMAC_SHA256:
        return hmac.new(key.encode(), message, hashlib.sha256).hexdigest()
    return hashlib.sha256(message).hexdigest()


def algorithm(key: str) -> str:
    return HMAC_SHA256 if key else SHA256


def seal(seq: int, prev_hash: str, entry: Entry, key: str,
         content_json: str | None = None) -> Record:
    """The record ``entry`` becomes at position ``seq`` after ``prev_hash``. ``content_json``,
    ``entry.content_json(algorithm(key))`` computed beforehand, leaves only the hash to do
    here (under the chain's lock)."""
    alg = algorithm(key)
    record = Record(seq, entry.recorded_at, entry.kind, entry.actor, entry.action,
                    entry.source, entry.remote_addr, entry.target, entry.details, alg,
                    prev_hash, "")
    record.record_hash = _digest_json(prev_hash, content_json or entry.content_json(alg), alg,
                                      key)
    return record


def anchor_for(record: Record, pruned: int, first_pruned: int, before: str, actor: str,
               key: str) -> Record:
    """The record that replaces ``record``, the last one pruned: it keeps its hash, so the next
    record still links to it, and seals what was pruned with a digest of its own."""
    details: dict[str, Any] = {"pruned_records": pruned, "pruned_seqs": [first_pruned, record.seq],
                               "before": before, "replaced": record.as_dict()}
    anchor = Record(record.seq, utc_timestamp(), ANCHOR, actor, "audit.anchor", "cli", "",
                    f"records {first_pruned}..{record.seq}", details,
                    HMAC_SHA256 if key else SHA256, record.prev_hash, record.record_hash)
    anchor.details["anchor_digest"] = _anchor_digest(anchor, key)
    return anchor


def _anchor_digest(anchor: Record, key: str) -> str:
    content = anchor.content()
    content["details"] = {k: v for k, v in anchor.details.items() if k != "anchor_digest"}
    return digest(anchor.prev_hash + anchor.record_hash, content, key)


@dataclass
class Verdict:
    ok: bool
    checked: int
    message: str
    bad_seq: int | None = None
    head_seq: int = 0
    head_hash: str = GENESIS
    anchor_seq: int | None = None


class _Problem(Exception):
    def __init__(self, seq: int, message: str) -> None:
        super().__init__(message)
        self.seq = seq
        self.message = message


def verify(records: Iterable[Record], head: tuple[int, str], key: str) -> Verdict:
    """Walk ``records`` (in ``seq`` order) and report the first that was changed, deleted,
    inserted or moved; ``head`` is the chain head's (seq, hash)."""
    checked = 0
    state = _Walk(key)
    try:
        for record in records:
            state.step(record)
            checked += 1
        state.finish(head)
    except _Problem as problem:
        return Verdict(False, checked, problem.message, problem.seq, head[0], head[1],
                       state.anchor_seq)
    anchored = (f", after the anchor of the records pruned up to {state.anchor_seq}"
                if state.anchor_seq is not None else "")
    return Verdict(True, checked, f"{checked} records verified{anchored}; the chain ends at "
                                  f"record {head[0]} with hash {head[1]}", None, head[0],
                   head[1], state.anchor_seq)


class _Walk:
    def __init__(self, key: str) -> None:
        self.key = key
        self.previous: Record | None = None
        self.by_prev: dict[str, int] = {}
        self.seen_hashes: dict[str, int] = {}
        self.anchor_seq: int | None = None

    def step(self, record: Record) -> None:
        if record.alg == HMAC_SHA256 and not self.key:
            raise _Problem(record.seq, f"{record.label()} is sealed with an HMAC key: set "
                                       "[audit] hmac_key (FLOW__AUDIT__HMAC_KEY) to verify it")
        if record.alg == SHA256 and self.key:
            raise _Problem(record.seq, f"{record.label()} is not sealed with the HMAC key: it "
                                       "was rewritten, or recorded before [audit] hmac_key was "
                                       "set (prune such records: the anchor is sealed)")
        if record.kind == ANCHOR:
            self._anchor(record)
        elif digest(record.prev_hash, record.content(), self.key) != record.record_hash:
            raise _Problem(record.seq, f"{record.label()} was changed: its hash does not match "
                                       "its content")
        self._link(record)
        self.seen_hashes[record.record_hash] = record.seq
        self.previous = record

    def _anchor(self, record: Record) -> None:
        if self.previous is not None:
            raise _Problem(record.seq, f"{record.label()} is an anchor in the middle of the "
                                       "chain: only the first record may be one")
        expected = record.details.get("anchor_digest")
        if expected != _anchor_digest(record, self.key):
            raise _Problem(record.seq, f"{record.label()} is an anchor that was changed or "
                                       "forged: its digest does not match")
        self.anchor_seq = record.seq

    def _link(self, record: Record) -> None:
        previous = self.previous
        if previous is None:
            if record.kind != ANCHOR and (record.seq != 1 or record.prev_hash != GENESIS):
                first = "record 1 is" if record.seq > 1 else "the records before it are"
                raise _Problem(record.seq, f"{record.label()} does not start the chain: "
                                           f"{first} missing (deleted)")
            return
        if record.prev_hash == previous.record_hash and record.seq == previous.seq + 1:
            return
        if record.seq > previous.seq + 1 and record.prev_hash != previous.record_hash:
            missing = (f"record {previous.seq + 1} is" if record.seq == previous.seq + 2 else
                       f"records {previous.seq + 1}..{record.seq - 1} are")
            raise _Problem(previous.seq + 1, f"{missing} missing (deleted): {record.label()} "
                                             f"does not follow record {previous.seq}")
        raise _Problem(record.seq, f"{record.label()} is out of order (inserted or moved): it "
                                   f"does not follow record {previous.seq}")

    def finish(self, head: tuple[int, str]) -> None:
        last = self.previous
        head_seq, head_hash = head
        if last is None:
            if head_seq != 0:
                raise _Problem(1, f"records 1..{head_seq} are missing (deleted): the chain "
                                  "head says the chain has them")
            return
        if last.seq < head_seq:
            raise _Problem(last.seq + 1, f"records {last.seq + 1}..{head_seq} are missing "
                                         f"(deleted): the chain ends at record {last.seq} but "
                                         f"its head says {head_seq}")
        if last.seq > head_seq or last.record_hash != head_hash:
            raise _Problem(last.seq, f"{last.label()} does not match the chain head "
                                     f"(record {head_seq}): it was inserted or changed")


def iter_sorted(records: Iterable[Record]) -> Iterator[Record]:
    return iter(sorted(records, key=lambda r: r.seq))
