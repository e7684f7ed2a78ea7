"""Published efficiency claims, stated as data (``claims.toml``) and checked by measurement."""

from cnnbench.claims.check import (
    DEFAULT_CLAIMS,
    MEASURES,
    Claim,
    Verdict,
    check_claim,
    check_claims,
    load_claims,
)

__all__ = [
    "Claim",
    "Verdict",
    "MEASURES",
    "DEFAULT_CLAIMS",
    "load_claims",
    "check_claim",
    "check_claims",
]
