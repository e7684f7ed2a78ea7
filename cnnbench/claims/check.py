"""Published efficiency claims, checked against measurement.

Claims are data (``claims.toml`` beside this module, or a user's file of the same shape). A
``[[claim]]`` names a measurement from :data:`MEASURES`, its arguments, what the text says
(``expected``, or ``low``/``high``) and how to compare (``kind``); the verdict comes from the
measured value, so building the model differently (``model_kwargs = { se_reduction = 8 }``)
changes the number and possibly the verdict. A ``[[published]]`` entry records a statement
that cannot be measured without trained weights (accuracy, history): it never gets a verdict.

Decision rules (m = measured, e = expected, t = tolerance):

* ``relative``: ``|m / e - 1| <= t`` (e != 0)      * ``absolute``: ``|m - e| <= t``
* ``at_least``: ``m >= e``    * ``at_most``: ``m <= e``
* ``greater_than``: ``m > e``    * ``less_than``: ``m < e``
* ``between``: ``low <= m <= high``

A claim's ``source_id`` ties it to a statement of a source text (``"D7"``); further claims that
check other numbers of the same statement carry ``part_of = "D7"``, and the statement holds
when all of them hold (:func:`statement_verdicts`). ``reading`` says how an ambiguous
statement was read. Files are validated when loaded: every problem is one UsageError line
naming the file, the claim and the field. Nothing a claims file names is imported or run:
measures come from :data:`MEASURES` and models from the zoo.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from cnnbench.claims.measures import MEASURES, check_args
from cnnbench.errors import UsageError

__all__ = [
    "Claim",
    "Verdict",
    "MEASURES",
    "KINDS",
    "DEFAULT_CLAIMS",
    "MAX_FILE_BYTES",
    "decide",
    "load_claims",
    "load_published",
    "check_claim",
    "check_claims",
    "statement_verdicts",
    "claim_models",
    "claims_about",
]

DEFAULT_CLAIMS = Path(__file__).with_name("claims.toml")
#: Claims files larger than this are refused unread.
MAX_FILE_BYTES = 1 << 20
#: Comparison kinds of a measured claim (see the module docstring for the rules).
KINDS = ("relative", "absolute", "at_least", "at_most", "greater_than", "less_than", "between")
PUBLISHED = "published"
_TOLERANCE_KINDS = ("relative", "absolute")
_ID_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.\-]*")


@dataclass(frozen=True)
class Claim:
    """One claim as written in the claims file (``kind = "published"`` for a [[published]]
    entry, which has no measure). ``unit`` is how to print the numbers ("count", "percent",
    "ratio", "GMACs"); empty means the measure's own unit."""

    id: str
    text: str
    source: str
    measure: str
    expected: float | None
    kind: str = "relative"
    tolerance: float = 0.0
    unit: str = ""
    args: dict[str, Any] = field(default_factory=dict)
    source_id: str | None = None
    part_of: str | None = None
    reading: str = ""
    low: float | None = None
    high: float | None = None
    published: str = ""  # for kind "published": the figure or statement as published
    models: tuple[str, ...] = ()  # for kind "published": the zoo models it is about


@dataclass
class Verdict:
    """A claim with its measured value and whether it holds.

    ``holds`` is None for a published statement (never measured) and for a claim whose
    measurement failed (``error`` says why). ``deviation`` is ``measured / expected - 1`` for
    relative claims, ``measured - expected`` otherwise, and for ``between`` the distance to the
    nearer bound when outside (0 inside). ``detail`` says what was counted.
    """

    claim: Claim
    measured: float | None
    holds: bool | None
    deviation: float | None
    detail: str = ""
    error: str | None = None

    id = property(lambda self: self.claim.id)
    source_id = property(lambda self: self.claim.source_id)
    part_of = property(lambda self: self.claim.part_of)
    text = property(lambda self: self.claim.text)
    source = property(lambda self: self.claim.source)
    reading = property(lambda self: self.claim.reading)
    measure = property(lambda self: self.claim.measure)
    args = property(lambda self: self.claim.args)
    expected = property(lambda self: self.claim.expected)
    low = property(lambda self: self.claim.low)
    high = property(lambda self: self.claim.high)
    kind = property(lambda self: self.claim.kind)
    tolerance = property(lambda self: self.claim.tolerance)

    @property
    def unit(self) -> str:
        c = self.claim
        return c.unit or (MEASURES[c.measure].unit if c.measure in MEASURES else "")

    @property
    def status(self) -> str:
        """'holds', 'does not hold', 'published' or 'error'."""
        if self.claim.kind == PUBLISHED:
            return PUBLISHED
        if self.holds is None:
            return "error"
        return "holds" if self.holds else "does not hold"

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready record: the claim's fields, the measurement and the verdict."""
        c = self.claim
        return {
            "id": c.id,
            "source_id": c.source_id,
            "part_of": c.part_of,
            "text": c.text,
            "source": c.source,
            "reading": c.reading,
            "measure": c.measure or None,
            "args": c.args,
            "kind": c.kind,
            "expected": c.expected,
            "low": c.low,
            "high": c.high,
            "tolerance": c.tolerance,
            "unit": self.unit,
            "published": c.published or None,
            "models": list(claim_models(c)),
            "measured": self.measured,
            "deviation": self.deviation,
            "holds": self.holds,
            "verdict": self.status,
            "detail": self.detail,
            "error": self.error,
        }


def decide(
    kind: str,
    measured: float,
    expected: float | None = None,
    tolerance: float = 0.0,
    low: float | None = None,
    high: float | None = None,
) -> tuple[bool, float]:
    """(holds, deviation) of a measured value under a kind's rule (module docstring)."""
    if kind == "between":
        assert low is not None and high is not None
        deviation = (
            0.0 if low <= measured <= high else min(measured - low, measured - high, key=abs)
        )
        return low <= measured <= high, deviation
    assert expected is not None
    if kind == "relative":
        deviation = measured / expected - 1
        return abs(deviation) <= tolerance, deviation
    deviation = measured - expected
    rules = {
        "absolute": abs(deviation) <= tolerance,
        "at_least": measured >= expected,
        "at_most": measured <= expected,
        "greater_than": measured > expected,
        "less_than": measured < expected,
    }
    if kind not in rules:
        raise UsageError(f"unknown kind {kind!r}; kinds: {', '.join(KINDS)}")
    return rules[kind], deviation


# --- loading and validation ----------------------------------------------------------------

_CLAIM_FIELDS = {f.name for f in fields(Claim)} - {"published", "models"}
_PUBLISHED_FIELDS = {
    "id", "text", "source", "source_id", "reading", "published", "kind", "models"
}  # fmt: skip


def _number_problem(name: str, value: Any) -> str | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return f"{name} must be a number, got {value!r}"
    if not math.isfinite(value):
        return f"{name} must be finite, got {value!r}"
    return None


def _common_problem(raw: dict[str, Any], allowed: set[str]) -> str | None:
    """Problems of the fields every entry has (as 'FIELD ...' messages)."""
    for key in ("text", "source"):
        if not isinstance(raw.get(key), str) or not raw[key].strip():
            return f"{key} must be a non-empty string"
    for key in ("reading", "published", "unit", "measure"):
        if key in allowed and key in raw and not isinstance(raw[key], str):
            return f"{key} must be a string, got {raw[key]!r}"
    for key in ("source_id", "part_of"):
        if key in allowed and key in raw:
            if not isinstance(raw[key], str) or not _ID_RE.fullmatch(raw[key]):
                return f"{key} must be an id like 'D7', got {raw[key]!r}"
    return None


def _claim_problem(raw: dict[str, Any]) -> str | None:
    """Why a [[claim]] entry (with a valid id) is refused; None if it is fine."""
    if p := _common_problem(raw, _CLAIM_FIELDS):
        return p
    if "source_id" in raw and "part_of" in raw:
        return "part_of: a claim has a source_id or is part_of one, not both"
    measure = raw.get("measure")
    if not isinstance(measure, str):
        return "measure is required (a name from cnnbench.claims.MEASURES)"
    if measure not in MEASURES:
        return f"measure: unknown measure {measure!r}; known: {', '.join(MEASURES)}"
    kind = raw.get("kind", "relative")
    if kind == PUBLISHED:
        return "kind 'published' belongs in a [[published]] entry, without a measure"
    if kind not in KINDS:
        return f"kind must be one of {', '.join(KINDS)}; got {kind!r}"
    if kind == "between":
        if "low" not in raw or "high" not in raw:
            return "between needs both bounds, low and high"
        for key in ("low", "high"):
            if p := _number_problem(key, raw[key]):
                return p
        if raw["low"] > raw["high"]:
            return f"low ({raw['low']}) must not exceed high ({raw['high']})"
        if "expected" in raw and (p := _number_problem("expected", raw["expected"])):
            return p
    else:
        for key in ("low", "high"):
            if key in raw:
                return f"{key} applies to kind 'between' only (kind is {kind!r})"
        if "expected" not in raw:
            return "expected is required"
        if p := _number_problem("expected", raw["expected"]):
            return p
        if kind == "relative" and raw["expected"] == 0:
            return "expected = 0 cannot be a relative claim; use kind 'absolute'"
    if "tolerance" in raw:
        if p := _number_problem("tolerance", raw["tolerance"]):
            return p
        if raw["tolerance"] < 0:
            return f"tolerance must be >= 0, got {raw['tolerance']}"
        if raw["tolerance"] and kind not in _TOLERANCE_KINDS:
            return f"tolerance applies to relative and absolute claims only (kind is {kind!r})"
    args = raw.get("args", {})
    if not isinstance(args, dict):
        return f"args must be a table, got {args!r}"
    if p := check_args(measure, args):
        return f"bad args for measure {measure!r}: {p}"
    return None


def _published_problem(raw: dict[str, Any]) -> str | None:
    if raw.get("kind", PUBLISHED) != PUBLISHED:
        return f"kind of a [[published]] entry must be 'published', got {raw['kind']!r}"
    models = raw.get("models", [])
    if not isinstance(models, list) or not all(isinstance(m, str) and m for m in models):
        return f"models must be a list of zoo model names, got {models!r}"
    return _common_problem(raw, _PUBLISHED_FIELDS)


def _entries(path: Path, data: dict[str, Any], table: str) -> list[dict[str, Any]]:
    entries = data.get(table, [])
    if not isinstance(entries, list) or not all(isinstance(e, dict) for e in entries):
        raise UsageError(f"{path}: {table} must be an array of tables ([[{table}]])")
    return entries


def _parse(path: Path) -> tuple[list[Claim], list[Claim]]:
    from cnnbench.results import read_toml_capped

    data = read_toml_capped(
        path, limit=MAX_FILE_BYTES, missing="no such claims file", kind="a TOML claims file"
    )
    unknown = sorted(set(data) - {"claim", PUBLISHED})
    if unknown:
        raise UsageError(
            f"{path}: unknown top-level key {unknown[0]!r}; expected [[claim]] and [[published]]"
        )
    seen_ids: dict[str, str] = {}
    seen_sources: dict[str, str] = {}
    claims: list[Claim] = []
    published: list[Claim] = []
    for table, allowed in (("claim", _CLAIM_FIELDS), (PUBLISHED, _PUBLISHED_FIELDS)):
        for i, raw in enumerate(_entries(path, data, table), start=1):
            cid = raw.get("id")
            where = f"[[{table}]] #{i}" if table == PUBLISHED else f"claim #{i}"
            bad = sorted(set(raw) - allowed)
            if bad or not isinstance(cid, str):
                shown = repr(cid) if isinstance(cid, str) else "no id"
                why = f"unknown field {bad[0]!r}" if bad else "id must be a string"
                raise UsageError(f"{path}: {where} is malformed ({shown}): {why}")
            if not _ID_RE.fullmatch(cid):
                raise UsageError(f"{path}: {where}: id {cid!r} must be letters, digits, _ . -")
            if cid in seen_ids:
                raise UsageError(f"{path}: claim {cid!r}: id is duplicated ({seen_ids[cid]})")
            seen_ids[cid] = f"also {where}"
            problem = _claim_problem(raw) if table == "claim" else _published_problem(raw)
            if problem:
                raise UsageError(f"{path}: claim {cid!r}: {problem}")
            sid = raw.get("source_id")
            if sid is not None:
                if sid in seen_sources:
                    raise UsageError(
                        f"{path}: claim {cid!r}: source_id {sid!r} is already claim "
                        f"{seen_sources[sid]!r}; tag further parts with part_of"
                    )
                seen_sources[sid] = cid
            if table == "claim":
                claims.append(Claim(**raw))
            else:
                entry = {**raw, "kind": PUBLISHED, "measure": "", "expected": None}
                entry["models"] = tuple(raw.get("models", ()))
                published.append(Claim(**entry))
    for c in claims:
        if c.part_of is not None and c.part_of not in seen_sources:
            raise UsageError(
                f"{path}: claim {c.id!r}: part_of {c.part_of!r} names no claim's source_id"
            )
    return claims, published


def load_claims(path: str | Path | None = None, *, published: bool = False) -> list[Claim]:
    """The [[claim]] entries of a TOML claims file (the built-in set by default), validated;
    with ``published=True`` the [[published]] entries follow them."""
    claims, pub = _parse(Path(path) if path is not None else DEFAULT_CLAIMS)
    if not claims:
        raise UsageError(f"{path or DEFAULT_CLAIMS}: no [[claim]] entries")
    return claims + pub if published else claims


def load_published(path: str | Path | None = None) -> list[Claim]:
    """The [[published]] entries (statements that are not measured) of a claims file."""
    return _parse(Path(path) if path is not None else DEFAULT_CLAIMS)[1]


# --- checking ------------------------------------------------------------------------------


def check_claim(claim: Claim) -> Verdict:
    """Measure and judge one claim; a published statement gets no verdict (holds None).

    Arguments are validated first (UsageError); a measurement that cannot be made (a model
    not in the zoo, a builder refusing its arguments) gives a verdict with ``error`` set.
    """
    if claim.kind == PUBLISHED:
        return Verdict(claim, None, None, None)
    if claim.measure not in MEASURES:
        raise UsageError(f"claim {claim.id!r}: measure: unknown measure {claim.measure!r}")
    if problem := check_args(claim.measure, claim.args):
        raise UsageError(f"claim {claim.id!r}: bad args for measure {claim.measure!r}: {problem}")
    try:
        measured, detail = MEASURES[claim.measure].evaluate(**claim.args)
    except UsageError as exc:
        return Verdict(claim, None, None, None, error=str(exc))
    holds, deviation = decide(
        claim.kind, measured, claim.expected, claim.tolerance, claim.low, claim.high
    )
    return Verdict(claim, measured, holds, deviation, detail)


def check_claims(
    claims: Sequence[Claim] | None = None, *, published: bool = False
) -> list[Verdict]:
    """Judge every claim (the built-in [[claim]] set by default; with ``published=True`` the
    built-in [[published]] entries follow, without verdicts). Models, profiles and traces are
    cached across claims, so each model spec is built and counted once (meta device)."""
    if claims is None:
        claims = load_claims(published=published)
    return [check_claim(c) for c in claims]


def statement_verdicts(verdicts: Sequence[Verdict]) -> dict[str, tuple[bool | None, list[Verdict]]]:
    """Source id -> (holds, its verdicts: the tagged claim first, then its parts). A statement
    holds when all its claims hold; None if any is published or failed to measure."""
    out: dict[str, tuple[bool | None, list[Verdict]]] = {}
    for v in verdicts:
        if v.source_id is not None:
            out[v.source_id] = (None, [v])
    for v in verdicts:
        if v.part_of is not None and v.part_of in out:
            out[v.part_of][1].append(v)
    for sid, (_, vs) in out.items():
        states = [v.holds for v in vs]
        out[sid] = (None if None in states else all(states), vs)
    return out


def _models_in(value: Any) -> list[str]:
    """Every ``model`` name inside a claim's (nested) arguments."""
    if isinstance(value, dict):
        found = [value["model"]] if isinstance(value.get("model"), str) else []
        return found + [m for k, v in value.items() if k != "model" for m in _models_in(v)]
    if isinstance(value, list):
        return [m for v in value for m in _models_in(v)]
    return []


def claim_models(claim: Claim) -> tuple[str, ...]:
    """The zoo models a claim is about: those its arguments build, or a published entry's
    ``models``; in order of first mention, without repeats."""
    names = list(claim.models) + _models_in(claim.args)
    return tuple(dict.fromkeys(names))


def claims_about(model: str, claims: Sequence[Claim] | None = None) -> list[Claim]:
    """The claims (built-in ones, published entries included, by default) about ``model``."""
    if claims is None:
        claims = load_claims(published=True)
    return [c for c in claims if model in claim_models(c)]
