"""`errors.one_line`: every exception as one line."""

from cnnbench.errors import one_line


def test_one_line_keeps_the_first_line_and_names_the_type() -> None:
    assert one_line(ValueError("bad shape\nsecond line")) == "ValueError: bad shape"
    assert one_line(ValueError("  \n bad \n")) == "ValueError: bad"


def test_one_line_without_type_and_empty_messages() -> None:
    assert one_line(RuntimeError("first\nsecond"), with_type=False) == "first"
    assert one_line(RuntimeError(""), with_type=False) == "RuntimeError"
    assert one_line(KeyError()) == "KeyError"


def test_one_line_of_system_exit_shows_the_code() -> None:
    assert one_line(SystemExit(0)) == "SystemExit(0)"
    assert one_line(SystemExit("stop")) == "SystemExit('stop')"
