"""A model's cost card: what a zoo model costs, at the resolution its cited accuracy was
measured at, next to that accuracy's provenance and the claims made about the model.

The card is data (:class:`Card`, ``to_dict()`` for JSON); :mod:`cnnbench.report.card` renders
it for the terminal and as Markdown. Costs are counted here (meta device, no weights): params,
MACs (multiply-accumulates of conv, linear and matmul, bias excluded), FLOPs (cnnbench's rule
table) and inference activation memory (peak of live activations, bytes, one image), once at
the native input size and once at every other resolution a cited value was evaluated at.
Claims come with their verdicts; published entries have none.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from cnnbench.claims import Verdict, check_claims, claims_about
from cnnbench.errors import UsageError
from cnnbench.models import CitedAccuracy, UnknownModelError, get_model_info
from cnnbench.static import profile_static

__all__ = ["Card", "CostAt", "build_card"]


@dataclass(frozen=True)
class CostAt:
    """Static costs of one image at ``resolution`` (H = W, pixels)."""

    resolution: int
    params: int
    macs: int
    flops: int
    activation_bytes: int
    native: bool

    def to_dict(self) -> dict[str, Any]:
        return {
            "resolution": self.resolution,
            "params": self.params,
            "macs": self.macs,
            "flops": self.flops,
            "activation_bytes": self.activation_bytes,
            "native": self.native,
        }


@dataclass
class Card:
    """Everything on a model's card. ``layout`` is the zoo builder's one-line description;
    ``chosen`` the cited top-1 reports print (None when no cited value fits this layout)."""

    model: str
    family: str
    paper: str
    layout: str
    input_size: tuple[int, int, int]
    costs: list[CostAt]
    cited: list[CitedAccuracy]
    chosen: CitedAccuracy | None
    claims: list[Verdict] = field(default_factory=list)

    def cost_at(self, resolution: int) -> CostAt | None:
        return next((c for c in self.costs if c.resolution == resolution), None)

    def to_dict(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "family": self.family,
            "paper": self.paper,
            "layout": self.layout,
            "input_size": list(self.input_size),
            "costs": [c.to_dict() for c in self.costs],
            "cited": [c.to_dict() for c in self.cited],
            "chosen_top1": self.chosen.to_dict() if self.chosen else None,
            "claims": [v.to_dict() for v in self.claims],
        }


def _layout(builder: Any) -> str:
    doc = (getattr(builder, "__doc__", None) or "").strip()
    return " ".join(doc.split("\n\n")[0].split())


def build_card(model: str, *, claims: bool = True) -> Card:
    """The card of zoo model ``model`` (UsageError for other names). ``claims=False``
    leaves the claims out (they are measured, which builds the models they name)."""
    try:
        info = get_model_info(model)
    except UnknownModelError as exc:
        raise UsageError(f"{exc} (a card is for zoo models)") from None
    native = info.input_size[1]
    resolutions = [native] + sorted({c.resolution for c in info.cited} - {native})
    costs = []
    for res in resolutions:
        prof = profile_static(model, resolution=res, train_memory=False)
        costs.append(
            CostAt(res, prof.params, prof.macs, prof.flops, prof.activation_bytes, res == native)
        )
    verdicts = check_claims(claims_about(model)) if claims else []
    return Card(
        model=model,
        family=info.family,
        paper=info.paper,
        layout=_layout(info.builder),
        input_size=info.input_size,
        costs=costs,
        cited=list(info.cited),
        chosen=info.chosen_top1(),
        claims=verdicts,
    )
