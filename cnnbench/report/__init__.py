"""Reporting: every renderer (terminal, CSV, Markdown, JSON, HTML) is a pure function of a
:class:`~cnnbench.results.Run`; the human reports walk one document
(:mod:`cnnbench.report.document`), output formats sit in one registry (:data:`FORMATS`),
charts in another (:data:`~cnnbench.report.charts.CHARTS`). Reporters never measure."""

from cnnbench.report.files import *  # noqa: F403 - the package face is files' public names
from cnnbench.report.files import __all__ as __all__
