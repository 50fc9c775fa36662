"""``ctrpy.cli.render``: ctr's tables (Go's text/tabwriter, as ctr configures it), its two
ways of printing sizes, and go-units' durations."""

from __future__ import annotations

import io

import pytest

from ctrpy.cli.render import go_human_size, human_duration, human_size, table, tabwriter


def test_space_padding_makes_every_column_its_widest_cell_plus_one() -> None:
    assert tabwriter([["a", "bb", ""], ["ccc", "d", ""]]) == "a   bb \nccc d  \n"


def test_tab_padding_rounds_each_column_up_to_a_multiple_of_eight() -> None:
    out = tabwriter([["DIGEST", "SIZE", "LABELS"], ["x" * 15, "92B", "-"]], "\t")
    assert out == "DIGEST\t\tSIZE\tLABELS\n" + "x" * 15 + "\t92B\t-\n"


def test_a_cell_exactly_a_tab_stop_wide_gets_one_more_tab() -> None:
    # 7 characters + the padding of 1 is 8: still one tab, so the column is 8 wide
    assert tabwriter([["1234567", "x"], ["12345678", "y"]], "\t") == "1234567\t\tx\n12345678\ty\n"


def test_the_last_cell_of_a_line_belongs_to_no_column() -> None:
    assert tabwriter([["a", "long last cell"], ["bbb", "c"]]) == "a   long last cell\nbbb c\n"


def test_a_column_is_only_as_long_as_the_lines_that_have_it() -> None:
    # ctr's images check: the header ends its last cell with a tab, the rows do not
    lines = [["REF", "UNPACKED", ""], ["x", "true"], ["yy", "false"]]
    assert tabwriter(lines) == "REF UNPACKED \nx   true\nyy  false\n"


def test_a_line_of_one_cell_starts_the_columns_again() -> None:
    assert tabwriter([["a", ""], ["no tabs"], ["bbbb", ""]]) == "a \nno tabs\nbbbb \n"


def test_table_ends_every_cell_with_a_tab_by_default_as_images_ls() -> None:
    out = io.StringIO()
    table(out, ["REF", "SIZE"], [["a", "1.0 KiB"]])
    assert out.getvalue() == "REF SIZE    \na   1.0 KiB \n"


def test_table_leaves_the_last_cell_as_it_is_when_asked_as_content_ls() -> None:
    out = io.StringIO()
    table(out, ["DIGEST", "LABELS"], [["d", "-"]], padchar="\t", header_end="", row_end="")
    assert out.getvalue() == "DIGEST\tLABELS\nd\t-\n"


@pytest.mark.parametrize(
    ("size", "shown"),
    [
        (0, "0B"), (92, "92B"), (999, "999B"), (1000, "1kB"), (1298, "1.298kB"), (1500, "1.5kB"),
        (63_370_000, "63.37MB"), (999_950, "1000kB"), (2_000_000_000, "2GB"), (123_456_789_012, "123.5GB"),
    ],
)
def test_go_human_size_is_go_units_humansize(size: int, shown: str) -> None:
    assert go_human_size(size) == shown


@pytest.mark.parametrize(("size", "shown"), [(None, "-"), (512, "512.0 B"), (2458, "2.4 KiB"), (1 << 20, "1.0 MiB")])
def test_human_size_is_ctrs_progress_bytes(size: int | None, shown: str) -> None:
    assert human_size(size) == shown


@pytest.mark.parametrize(
    ("seconds", "shown"),
    [
        (0.5, "Less than a second"), (1, "1 second"), (59, "59 seconds"), (60, "About a minute"),
        (119, "About a minute"), (3599, "59 minutes"), (3600, "About an hour"), (5400, "2 hours"),
        (9000, "3 hours"),  # 2.5 hours: Go rounds half up, not to even
        (47 * 3600, "47 hours"), (48 * 3600, "2 days"), (14 * 86400, "2 weeks"), (60 * 86400, "2 months"),
        (730 * 86400, "2 years"),
    ],
)
def test_human_duration_is_go_units_humanduration(seconds: float, shown: str) -> None:
    assert human_duration(seconds) == shown
