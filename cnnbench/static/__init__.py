"""Static costs: the rule table and dispatch counter, the four counter backends, meta-device
helpers, the static profile of a model and the SE-overhead analysis. Nothing here prints."""

from cnnbench.static.profile import (
    StaticProfile,
    build_model,
    check_input,
    fits_on_meta,
    input_error,
    meta_forward,
    on_meta,
    profile_static,
    smallest_resolution,
    stage_list,
)

__all__ = [
    "StaticProfile",
    "build_model",
    "check_input",
    "fits_on_meta",
    "input_error",
    "meta_forward",
    "on_meta",
    "profile_static",
    "smallest_resolution",
    "stage_list",
]
