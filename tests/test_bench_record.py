"""The benchmark record: targets checked by ``python -m bench.run --check``, the README's results
table rendered from ``bench/results.json``, and no reference figure typed into ``bench/``."""

import json
import re
from pathlib import Path

import pytest

from bench import run
from bench.run import Row, parse_target, render, verdict

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"


def _section(text: str, heading: str) -> str:
    """The README section from ``heading`` up to the next ``## `` heading."""
    start = text.index(f"\n{heading}\n")
    end = text.find("\n## ", start + 1)
    return text[start:end if end >= 0 else len(text)]


@pytest.mark.parametrize(("text", "kind", "limit"), [
    (">= 3x", "ratio", 3.0), (">= 1.7x", "ratio", 1.7), (">= 35 %", "percent", 35.0),
    ("<= 1,500", "absolute", 1500.0), ("<= 0.1", "absolute", 0.1), ("reported", "reported", None)])
def test_targets_parse(text, kind, limit):
    target = parse_target(text)
    assert (target.kind, target.limit) == (kind, limit)


def test_no_target_and_unknown_targets():
    assert parse_target("") is None
    with pytest.raises(ValueError, match="unknown target"):
        parse_target("about 3x")


@pytest.mark.parametrize(("ours", "reference", "target", "expected"), [
    (6.0, 2.0, ">= 3x", "PASS"), (5.0, 2.0, ">= 3x", "FAIL"),
    (35.0, 100.0, ">= 35 %", "PASS"), (34.0, 100.0, ">= 35 %", "FAIL"),
    (1500.0, None, "<= 1,500", "PASS"), (1501.0, None, "<= 1,500", "FAIL"),
    (0.2, None, "reported", "PASS"), (None, None, "reported", "MISSING"),
    (None, 2.0, ">= 3x", "MISSING"), (6.0, None, ">= 3x", "MISSING"),
    (6.0, None, "", None)])
def test_verdicts(ours, reference, target, expected):
    assert verdict(Row("figure", ours, reference, "", target)) == expected


def test_check_exits_non_zero_on_a_miss_or_a_missing_figure(tmp_path, monkeypatch, capsys):
    table = [("a.json", "fast", "fast thing", "slow", "slow thing", ">= 2x"),
             ("a.json", "rss", "memory", None, "", "<= 100"),
             ("b.json", "absent", "never measured", None, "", "")]
    monkeypatch.setattr(run, "TABLE", table)
    monkeypatch.setattr(run, "RESULTS", tmp_path / "results.json")
    run.RESULTS.write_text(json.dumps({"a": {"fast": 30.0, "slow": 10.0, "rss": 50.0}}))
    assert run.main(["--check"]) == 0
    assert "2 of 2 targets met" in capsys.readouterr().out
    run.RESULTS.write_text(json.dumps({"a": {"fast": 30.0, "slow": 20.0, "rss": 50.0}}))
    assert run.main(["--check"]) == 1
    assert re.search(r"^FAIL .* fast thing$", capsys.readouterr().out, re.MULTILINE)
    run.RESULTS.write_text(json.dumps({"a": {"fast": 30.0, "slow": 10.0}}))
    assert run.main(["--check"]) == 1
    assert re.search(r"^MISSING .* memory$", capsys.readouterr().out, re.MULTILINE)


def test_every_target_in_the_table_parses():
    for row in run.TABLE:
        parse_target(row[-1])


def test_the_run_record_is_rendered():
    record = {"commit": "0123456789abcdef", "uncommitted_changes": False,
              "machine": {"cores": 2, "cpu": "some CPU"}, "load_average_before": [0.1, 0, 0],
              "load_average_after": [1.25, 0, 0], "versions": {"torch": "2.13.0", "OpenMM": None},
              "wall_s": 1800.0}
    line = render({"run": record}).splitlines()[-1]
    assert line == ("Run: commit `0123456789`, 2 cores (some CPU), 1-minute load average 0.10 "
                    "before and 1.25 after, torch 2.13.0; 30 minutes.")


def test_a_run_refuses_to_merge_outputs_of_another_run(tmp_path, monkeypatch, capsys):
    (tmp_path / "old.json").write_text("{}")
    monkeypatch.setattr(run, "OUT", tmp_path)
    monkeypatch.setattr(run, "RESULTS", tmp_path / "results.json")
    monkeypatch.setattr(run, "BENCHMARKS", ())
    assert run.main([]) == 2
    assert "outputs of another run" in capsys.readouterr().err


def test_readme_benchmark_table_is_rendered_from_the_recorded_results():
    section = _section(README.read_text(), "## Benchmarks")
    table = render(json.loads(run.RESULTS.read_text()))
    assert table in section, "paste the output of python -m bench.run --table into README.md"
    rest = re.sub(r"`[^`]*`", "", section.replace(table, ""))
    assert not re.findall(r"\d", rest.replace("## Benchmarks", "")), \
        "a figure in the Benchmarks section that bench/results.json does not hold"


#: a literal number given to a rate or a time: a figure of some other run, not a measurement
TYPED_FIGURE = re.compile(r"""(_per_s|_us|_ms|_seconds)['"]?\s*[:=]\s*\d""")


def test_no_reference_figure_is_typed_into_the_benchmarks():
    hits = [f"{path.name}:{number}: {line.strip()}"
            for path in sorted((ROOT / "bench").glob("*.py"))
            for number, line in enumerate(path.read_text().splitlines(), 1)
            if TYPED_FIGURE.search(line)]
    assert not hits, "\n".join(hits)
