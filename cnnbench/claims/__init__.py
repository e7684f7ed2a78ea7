"""Published efficiency claims, stated as data (``claims.toml``) and checked by measurement."""

from cnnbench.claims.check import (
    DEFAULT_CLAIMS,
    KINDS,
    MAX_FILE_BYTES,
    MEASURES,
    Claim,
    Verdict,
    check_claim,
    check_claims,
    claim_models,
    claims_about,
    decide,
    load_claims,
    load_published,
    statement_verdicts,
)
from cnnbench.claims.measures import (
    VARIANTS,
    Measure,
    MeasureError,
    check_args,
    clear_cache,
    measure_help,
)

__all__ = [
    "Claim",
    "Verdict",
    "MEASURES",
    "DEFAULT_CLAIMS",
    "load_claims",
    "check_claim",
    "check_claims",
    "claim_models",
    "claims_about",
    "KINDS",
    "MAX_FILE_BYTES",
    "Measure",
    "MeasureError",
    "VARIANTS",
    "check_args",
    "clear_cache",
    "measure_help",
    "decide",
    "load_published",
    "statement_verdicts",
]
