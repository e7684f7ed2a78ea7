"""Rendering of cited accuracies and of a model's cost card (:class:`cnnbench.card.Card`).

Tables go through the shared table model (terminal, Markdown); the Markdown card is a
standalone document for a model card or a paper's appendix. Nothing here counts or measures.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from cnnbench.report import format as fmt
from cnnbench.report.table import Table, md_escape, to_markdown
from cnnbench.report.tables import claims_table

if TYPE_CHECKING:
    from cnnbench.card import Card

__all__ = ["cited_table", "card_tables", "card_markdown", "chosen_label"]


def chosen_label(chosen: Any, native_resolution: int) -> str:
    """The chosen top-1 as a list cell: ``76.13``, or ``80.608 @288px`` when it was
    evaluated at another resolution than the model's native one; "" when none."""
    if chosen is None:
        return ""
    at = "" if chosen.resolution == native_resolution else f" @{chosen.resolution}px"
    return f"{chosen.value:g}{at}"


def cited_table(
    model: str, cited: Sequence[Any], native_resolution: int, chosen: Any = None
) -> Table:
    """Every cited accuracy of ``model`` with its provenance; the chosen top-1 is marked."""
    table = Table.of(
        f"{model}: cited ImageNet accuracy (published, not measured)",
        "",
        "value",
        "metric",
        "weights",
        "eval",
        "layout",
        "source",
        text=(0, 2, 3, 4, 5, 6),
        caption=(
            "* = chosen top-1 (the zoo's layout, native resolution first); "
            f"native resolution {native_resolution}px"
        ),
    )
    for c in cited:
        layout = c.layout + ("" if c.layout_matches else " [not this zoo layout]")
        if c.note:
            layout += f"; {c.note}"
        evaluated = f"{c.resolution}px" + ("" if c.resolution == native_resolution else " (!)")
        table.add(
            [
                "*" if c == chosen else "",
                f"{c.value:g}",
                c.metric,
                c.weights,
                evaluated,
                layout,
                c.source,
            ],
            style="" if c.layout_matches else "dim",
        )
    return table


def _costs_table(card: Card) -> Table:
    table = Table.of(
        f"{card.model}: cost per image",
        "input",
        "params",
        "MACs",
        "FLOPs",
        "activations",
        "cited values at this size",
        text=(0, 5),
        caption="activations: peak of live activations in inference; (native) = zoo input size",
    )
    c0 = card.input_size[0]
    for cost in card.costs:
        at = [c for c in card.cited if c.resolution == cost.resolution and c.layout_matches]
        table.add(
            [
                f"{c0}x{cost.resolution}x{cost.resolution}" + (" (native)" if cost.native else ""),
                fmt.count(cost.params),
                fmt.macs(cost.macs),
                fmt.flops(cost.flops),
                fmt.nbytes(cost.activation_bytes),
                ", ".join(f"{c.value:g} {c.metric} ({c.weights})" for c in at) or "-",
            ]
        )
    return table


def _claims_table(card: Card) -> Table:
    table = claims_table(card.claims)
    return table.select(range(len(table.headers)), title=f"{card.model}: claims about it")


def _summary(card: Card) -> list[str]:
    """Plain lines: model, layout, chosen top-1 and what its resolution means for the costs."""
    c, h, w = card.input_size
    lines = [
        f"{card.model} ({card.family}; {card.paper})",
        f"zoo layout: {card.layout}",
        f"native input: {c}x{h}x{w}",
    ]
    chosen = card.chosen
    if chosen is None:
        fits = [x for x in card.cited if not x.layout_matches]
        lines.append("chosen top-1: none cited for this layout")
        for x in fits[:1]:
            lines.append(f"  cited for another layout: {x.label()} ({x.note or x.layout})")
        return lines
    lines.append(f"chosen top-1: {chosen.label()}; {chosen.source}")
    if chosen.resolution != h:
        cost = card.cost_at(chosen.resolution)
        native = card.cost_at(h)
        if cost and native:
            lines.append(
                f"  evaluated at {chosen.resolution}px, not the native {h}px: at "
                f"{chosen.resolution}px the model costs {fmt.macs(cost.macs)} "
                f"(native {fmt.macs(native.macs)}); compare accuracy with the "
                f"{chosen.resolution}px cost"
            )
    return lines


def card_tables(card: Card) -> tuple[list[str], list[Table]]:
    """(summary lines, tables) of a card for the terminal."""
    tables = [
        _costs_table(card),
        cited_table(card.model, card.cited, card.input_size[1], card.chosen),
    ]
    if card.claims:
        tables.append(_claims_table(card))
    return _summary(card), tables


def card_markdown(card: Card) -> str:
    """The card as one Markdown document."""
    lines, tables = card_tables(card)
    out = [f"# Cost card: {md_escape(card.model)}", ""]
    out += [f"- {md_escape(line.strip())}" for line in lines[1:]]
    out += [
        "",
        "Costs are counted by cnnbench (no weights, meta device); accuracies are cited from "
        "their sources, never measured.",
        "",
    ]
    for table in tables:
        out += [*to_markdown(table), ""]
    return "\n".join(out)
