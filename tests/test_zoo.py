"""Generic checks over every registered model: exact parameter counts against the reference
table, stage layout, and real forward passes in train and eval mode."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from cnnbench.models import StagedNet, create_model, get_model_info, list_models
from tests.reference_counts import REFERENCE

CASES = [(name, kw, n) for name, variants in REFERENCE.items() for kw, n in variants]

# Small input (H = W) per model where the default 64 does not fit the architecture.
_SMALL = {
    "lenet5": 32,
    "senet18": 32,
    "inception_v3": 80,
    "inception_v4": 80,
    "inception_resnet_v2": 80,
}


def _param_count(name: str, **kwargs: object) -> int:
    with torch.device("meta"):
        model = create_model(name, **kwargs)
    return sum(p.numel() for p in model.parameters())


def test_every_registered_model_is_in_the_reference_table() -> None:
    registered = set(list_models())
    assert registered == set(REFERENCE), (
        f"missing from tests: {sorted(registered - set(REFERENCE))}; "
        f"in tests but not registered: {sorted(set(REFERENCE) - registered)}"
    )


@pytest.mark.parametrize(
    ("name", "kwargs", "expected"), CASES, ids=[f"{c[0]}{c[1] or ''}" for c in CASES]
)
def test_exact_parameter_count(name: str, kwargs: dict, expected: int) -> None:
    assert _param_count(name, **kwargs) == expected


# Models with more parameters than this are checked in the slow suite only: their blocks are
# those of a smaller variant, and a forward takes 0.5-2 s (on meta tensors too) with their build.
_FAST_PARAMS = 40_000_000


def _default_params(name: str) -> int:
    """The reference count of the default configuration (no keyword arguments)."""
    return next(count for kwargs, count in REFERENCE[name] if not kwargs)


def _large(name: str) -> list[pytest.MarkDecorator]:
    return [pytest.mark.slow] if _default_params(name) > _FAST_PARAMS else []


@pytest.mark.parametrize(
    "name", [pytest.param(n, marks=_large(n), id=n) for n in sorted(REFERENCE)]
)
def test_stages_are_uniform_and_declared_channels_match_a_forward(name: str) -> None:
    """On meta tensors at native size: the stage layout, each stage's declared channels
    against its output, logits of the right shape, and no softmax at the end of the head."""
    info = get_model_info(name)
    with torch.device("meta"):
        model = create_model(name).eval()
    assert isinstance(model, StagedNet)
    names = [s.name for s in model.stages()]
    assert names[0] == "stem" and names[-1] == "head"
    assert names[1:-1] == [f"stage{i}" for i in range(1, len(names) - 1)]
    assert [n for n, _ in model.named_children() if n in names] == names
    seen: dict[str, int] = {}
    hooks = [
        getattr(model, n).register_forward_hook(
            lambda _m, _i, out, n=n: seen.__setitem__(n, out.shape[1])
        )
        for n in names
    ]
    logits = model(torch.empty(2, *info.input_size, device="meta"))
    for h in hooks:
        h.remove()
    assert logits.shape == (2, info.num_classes)
    assert seen == {s.name: s.out_channels for s in model.stages()}
    for stage in model.stages()[1:-1]:
        assert stage.blocks >= 1
    last = list(model.head.modules())[-1]
    assert not isinstance(last, (nn.Softmax, nn.LogSoftmax))


def _check_forward(
    name: str, sizes: tuple[int | None, ...], modes: tuple[str, ...] = ("eval", "train")
) -> None:
    """Real forwards of one build at each of ``sizes`` (None: native) in each of ``modes``:
    logits of the right shape, finite."""
    info = get_model_info(name)
    model = create_model(name)
    for size in sizes:
        c, h, w = info.input_size
        if size is not None:
            h = w = size
        for mode in modes:
            model.train(mode == "train")
            x = torch.randn(2, c, h, w)
            with torch.set_grad_enabled(mode == "train"):
                out = model(x)
            logits = out[0] if isinstance(out, tuple) else out
            assert logits.shape == (2, info.num_classes), (size, mode)
            assert torch.isfinite(logits).all(), (size, mode)


def _forward_params() -> list:
    """Per model, the real forwards of the default suite (the small size) and of the slow
    suite (native size, where the default suite checks shapes on meta tensors; both sizes for
    a model over :data:`_FAST_PARAMS` parameters)."""
    params = []
    for name in sorted(REFERENCE):
        small = _SMALL.get(name, 64)
        if _default_params(name) > _FAST_PARAMS:
            params.append(
                pytest.param(name, (None, small), marks=[pytest.mark.slow], id=f"{name}-slow")
            )
        else:
            params.append(pytest.param(name, (small,), id=name))
            params.append(
                pytest.param(name, (None,), marks=[pytest.mark.slow], id=f"{name}-native")
            )
    return params


# Each test builds the model once and runs it at the sizes given, in eval and train mode.
@pytest.mark.parametrize(("name", "sizes"), _forward_params())
def test_forward_at_native_and_small_size(name: str, sizes: tuple[int | None, ...]) -> None:
    _check_forward(name, sizes)


def test_no_print_in_forward(capsys: pytest.CaptureFixture[str]) -> None:
    for name in ("lenet5", "senet18"):
        _check_forward(name, (None,), ("eval",))
    assert capsys.readouterr().out == ""
