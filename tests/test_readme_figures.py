"""README figures that come from recorded benchmark output are that output, to the digit."""

from pathlib import Path

from bench.slow_cvs_table import RESULTS, lag_table, table

README = Path(__file__).resolve().parent.parent / "README.md"


def test_slow_cv_table_in_the_readme_is_rendered_from_the_recorded_results():
    assert table(RESULTS) in README.read_text(), \
        "regenerate the table with python -m bench.slow_cvs_table and paste it into README.md"


def test_slow_cv_lag_table_in_the_readme_is_rendered_from_the_recorded_results():
    assert lag_table(RESULTS) in README.read_text(), \
        "regenerate the tables with python -m bench.slow_cvs_table and paste them into README.md"
