"""Bad input, as a careless or adversarial user gives it: one clear line, exit 2, nothing written.

Every case runs the real CLI on a real lake seeded with one certified day, snapshots every
Delta table's version before and after, and asserts the error is one line naming the file,
the field or the column, without a traceback.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable
from datetime import date
from pathlib import Path
from typing import Any

import polars as pl
import pytest
import yaml
from deltalake import DeltaTable
from typer.testing import CliRunner

from pipelines.sources.synthetic import export_files
from tests.conftest import REPO, small_spec_data

DAY1, DAY2 = "2026-01-01", "2026-01-02"
REGION_PATTERN = "^[a-z][a-z0-9-]{1,31}$"


def cli(*args: str) -> Any:
    from pipelines.cli import _register, app

    _register()
    return CliRunner().invoke(app, list(args))


def versions(root: Path) -> dict[str, int]:
    """Every Delta table under ``root`` and its version."""
    out = {}
    for log in sorted(root.rglob("_delta_log")):
        out[str(log.parent.relative_to(root))] = DeltaTable(str(log.parent)).version()
    return out


def one_clear_line(result: Any, *needles: str) -> str:
    """The error line: exit 2, one line on stderr starting with 'error:', no traceback."""
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    assert result.exit_code == 2, (result.exit_code, result.output)
    err = result.stderr.strip()
    assert "Traceback" not in result.output and "Traceback" not in err
    lines = err.splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("error: "), err
    for n in needles:
        assert n in lines[0], (n, lines[0])
    return lines[0]


# --------------------------------------------------------------------------- a seeded synthetic lake
class Lake:
    def __init__(self, tmp: Path, seed: Path, data: dict[str, Any]) -> None:
        self.tmp = tmp
        self.root = tmp / "lake"
        shutil.copytree(seed / "lake", self.root)
        self.suites = tmp / "expectations"
        shutil.copytree(seed / "expectations", self.suites)
        self.data = json.loads(json.dumps(data))
        self.data["validation"]["suites_dir"] = str(self.suites)
        self.data["storage"]["root"] = str(self.root)
        self.before = versions(self.root)

    def spec(self, mutate: Callable[[dict[str, Any]], None] | None = None, name: str = "p.yaml") -> Path:
        data = json.loads(json.dumps(self.data))
        if mutate:
            mutate(data)
        path = self.tmp / name
        path.write_text(yaml.safe_dump(data, sort_keys=False))
        return path

    def run(self, spec: Path, *extra: str) -> Any:
        return cli("run", str(spec), "--date", DAY2, "--root", str(self.root), *extra)

    def unchanged(self) -> None:
        assert versions(self.root) == self.before, "a table moved to a new version"


@pytest.fixture(scope="module")
def seeded(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    seed = tmp_path_factory.mktemp("seed")
    shutil.copytree(REPO / "expectations", seed / "expectations")
    data = small_spec_data(regions=3, rows=300)
    data["validation"]["suites_dir"] = str(seed / "expectations")
    data["storage"]["root"] = str(seed / "lake")
    spec = seed / "p.yaml"
    spec.write_text(yaml.safe_dump(data, sort_keys=False))
    out = cli("run", str(spec), "--date", DAY1, "--root", str(seed / "lake"))
    assert out.exit_code == 0, out.output
    return seed, data


@pytest.fixture
def lake(tmp_path: Path, seeded: tuple[Path, dict[str, Any]]) -> Lake:
    return Lake(tmp_path, *seeded)


# --------------------------------------------------------------------------- feature functions
def test_feature_function_that_does_not_exist(lake: Lake) -> None:
    def mutate(d: dict[str, Any]) -> None:
        d["features"][0]["transform"] = "pipelines.features.fraud:no_such_function"

    one_clear_line(lake.run(lake.spec(mutate)), "p.yaml", "features[0].transform", "no_such_function")
    lake.unchanged()


def test_feature_module_that_fails_to_import(lake: Lake, monkeypatch: pytest.MonkeyPatch) -> None:
    (lake.tmp / "mods").mkdir()
    (lake.tmp / "mods" / "lockstep_broken_mod.py").write_text("raise RuntimeError('broken at import')\n")
    monkeypatch.syspath_prepend(str(lake.tmp / "mods"))

    def mutate(d: dict[str, Any]) -> None:
        d["features"][1]["transform"] = "lockstep_broken_mod:merchant"

    one_clear_line(lake.run(lake.spec(mutate)), "p.yaml", "features[1].transform", "broken at import")
    lake.unchanged()


def test_feature_function_that_raises(lake: Lake, monkeypatch: pytest.MonkeyPatch) -> None:
    (lake.tmp / "mods").mkdir()
    (lake.tmp / "mods" / "lockstep_raising_mod.py").write_text(
        "def card(inputs, ctx):\n    raise ValueError('kaboom in the transform')\n")
    monkeypatch.syspath_prepend(str(lake.tmp / "mods"))

    def mutate(d: dict[str, Any]) -> None:
        d["features"][0]["transform"] = "lockstep_raising_mod:card"

    one_clear_line(lake.run(lake.spec(mutate)), "features[0].transform", "kaboom in the transform")
    lake.unchanged()


# --------------------------------------------------------------------------- suites
def _edit_suite(lake: Lake, edit: Callable[[dict[str, Any]], Any]) -> Path:
    path = lake.suites / "transactions.json"
    suite = json.loads(path.read_text())
    replaced = edit(suite)
    path.write_text(replaced if isinstance(replaced, str) else json.dumps(suite))
    return path


@pytest.mark.parametrize("case, edit, needles", [
    ("invalid JSON", lambda s: json.dumps(s)[:-5], ["invalid JSON"]),
    ("unknown type", lambda s: s["expectations"].append({"type": "expect_the_moon", "kwargs": {}}),
     ["expect_the_moon", "unknown expectation type"]),
    ("missing column", lambda s: s["expectations"].append(
        {"type": "expect_column_values_to_not_be_null", "kwargs": {"column": "no_such_col"}}), ["no_such_col"]),
    ("quarantine on table level", lambda s: s["expectations"].append(
        {"type": "expect_table_row_count_to_be_between", "kwargs": {"min_value": 1},
         "meta": {"lockstep": {"policy": "quarantine"}}}), ["expect_table_row_count_to_be_between", "quarantine"]),
    ("empty value_set", lambda s: s["expectations"].append(
        {"type": "expect_column_values_to_be_in_set", "kwargs": {"column": "channel", "value_set": []}}),
     ["value_set"]),
])
def test_suite_errors(lake: Lake, case: str, edit: Callable[[dict[str, Any]], Any], needles: list[str]) -> None:
    path = _edit_suite(lake, edit)
    one_clear_line(lake.run(lake.spec()), str(path), *needles)
    lake.unchanged()


def test_regex_that_does_not_compile(lake: Lake) -> None:
    path = _edit_suite(lake, lambda s: s["expectations"].append(
        {"type": "expect_column_values_to_match_regex", "kwargs": {"column": "txn_id", "regex": "^(unclosed"}}))
    line = one_clear_line(lake.run(lake.spec()), str(path))
    assert len(line) < 500
    lake.unchanged()


# --------------------------------------------------------------------------- regions, spec, schedule
def test_unknown_region_among_known_ones(lake: Lake) -> None:
    one_clear_line(lake.run(lake.spec(), "--region", "eu-west", "--region", "xx-nowhere"), "xx-nowhere", "regions")
    lake.unchanged()


def test_unknown_region_in_a_plan_or_a_verification_is_refused(lake: Lake) -> None:
    spec = str(lake.spec())
    one_clear_line(cli("backfill", spec, "--start", DAY1, "--end", DAY2, "--dry-run", "--region", "xx-yy",
                       "--root", str(lake.root)), "'xx-yy'", "regions")
    one_clear_line(cli("verify", spec, "--date", DAY1, "--region", "xx-yy", "--root", str(lake.root)), "'xx-yy'")
    lake.unchanged()


@pytest.mark.parametrize("value", ["2026-01-02T05", "2026-01-02T00:15", "2026-01-02T23:59"])
def test_a_time_inside_a_daily_interval_is_not_its_key(lake: Lake, value: str) -> None:
    spec = str(lake.spec())
    for args in (("run", spec, "--date", value, "--root", str(lake.root)),
                 ("explain", spec, "--date", value, "--root", str(lake.root))):
        one_clear_line(cli(*args), f"--date {value}", "not an interval", "2026-01-02")
    lake.unchanged()
    assert cli("explain", spec, "--date", "2026-01-01T00:00", "--root", str(lake.root)).exit_code == 0


def test_spec_that_is_not_utf8(lake: Lake) -> None:
    spec = lake.spec()
    spec.write_bytes(spec.read_bytes().replace(b"description:", b"# caf\xe9 latin-1\ndescription:"))
    one_clear_line(lake.run(spec), str(spec), "UTF-8")
    lake.unchanged()


def test_schedule_that_is_no_cron(lake: Lake) -> None:
    spec = lake.spec(lambda d: d.update(schedule="61 25 * * 8"))
    one_clear_line(cli("check", str(spec)), str(spec), "schedule:", "61 25 * * 8")
    one_clear_line(lake.run(spec), "schedule:")
    lake.unchanged()


def test_region_pattern_prints_intact_and_paths_have_no_top_level_prefix(lake: Lake) -> None:
    line = one_clear_line(lake.run(lake.spec(lambda d: d.update(regions=["EU_West"]))), "regions[0]")
    assert REGION_PATTERN in line
    line = one_clear_line(lake.run(lake.spec(lambda d: d["tables"][0].update(source="nope"))), "tables[0].source:")
    assert "(top level)" not in line
    lake.unchanged()


# --------------------------------------------------------------------------- roots
def test_root_with_hash_is_rejected_before_writing(lake: Lake) -> None:
    hashed = lake.tmp / "a#b"
    one_clear_line(cli("run", str(lake.spec()), "--date", DAY2, "--root", str(hashed)), "--root", "'#'")
    assert not hashed.exists()
    spec = lake.spec(lambda d: d["storage"].update(root=str(hashed)))
    one_clear_line(cli("status", str(spec)), str(spec), "storage.root", "'#'")
    assert not hashed.exists()
    lake.unchanged()


def test_status_of_a_missing_root(lake: Lake) -> None:
    one_clear_line(cli("status", str(lake.spec()), "--root", str(lake.tmp / "nowhere")), "nowhere", "no such folder")


def test_diff_of_int_key_against_string_key(tmp_path: Path) -> None:
    pl.DataFrame({"k": [1, 2, 3], "v": [1.0, 2.0, 3.0]}).write_parquet(tmp_path / "a.parquet")
    pl.DataFrame({"k": ["1", "2", "3"], "v": [1.0, 2.0, 3.0]}).write_parquet(tmp_path / "b.parquet")
    one_clear_line(cli("diff", str(tmp_path / "a.parquet"), str(tmp_path / "b.parquet"), "--key", "k"),
                   "'k'", "Int64", "String")


def test_check_passes_on_a_good_spec(lake: Lake) -> None:
    out = cli("check", str(lake.spec()), "--date", DAY2, "--root", str(lake.root), "--json")
    assert out.exit_code == 0, out.output
    assert json.loads(out.stdout)["ok"] is True
    lake.unchanged()


# --------------------------------------------------------------------------- input files
@pytest.fixture(scope="module")
def file_seeded(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    seed = tmp_path_factory.mktemp("fileseed")
    shutil.copytree(REPO / "expectations", seed / "expectations")
    data = small_spec_data(regions=2, rows=300)
    data["sources"]["transactions"] = {"kind": "csv", "path": "LANDING/{region}/{ds}.csv"}
    data["storage"]["root"] = str(seed / "lake")
    data["validation"]["suites_dir"] = str(seed / "expectations")
    export_files(seed / "landing", regions=data["regions"], dates=[date(2026, 1, 1), date(2026, 1, 2)], rows=300,
                 merchants=200, fmt="csv")
    data["sources"]["transactions"]["path"] = str(seed / "landing" / "{region}" / "{ds}.csv")
    spec = seed / "p.yaml"
    spec.write_text(yaml.safe_dump(data, sort_keys=False))
    out = cli("run", str(spec), "--date", DAY1, "--root", str(seed / "lake"))
    assert out.exit_code in (0, 1), out.output  # the day lands (its decision does not matter here)
    return seed, data


@pytest.fixture
def file_lake(tmp_path: Path, file_seeded: tuple[Path, dict[str, Any]]) -> tuple[Lake, Path]:
    seed, data = file_seeded
    shutil.copytree(seed / "landing", tmp_path / "landing")
    data = json.loads(json.dumps(data))
    data["sources"]["transactions"]["path"] = str(tmp_path / "landing" / "{region}" / "{ds}.csv")
    lk = Lake(tmp_path, seed, data)
    return lk, tmp_path / "landing" / "eu-central" / f"{DAY2}.csv"


def test_file_sources_run_clean(file_lake: tuple[Lake, Path]) -> None:
    lake, _ = file_lake
    out = cli("check", str(lake.spec()), "--date", DAY2, "--root", str(lake.root))
    assert out.exit_code == 0, out.output


def test_csv_cell_that_is_not_a_number(file_lake: tuple[Lake, Path]) -> None:
    lake, day2 = file_lake
    df = pl.read_csv(day2, infer_schema=False)
    df = df.with_columns(amount=pl.when(pl.int_range(pl.len()) == 2).then(pl.lit("abc")).otherwise(pl.col("amount")))
    df.write_csv(day2)
    one_clear_line(lake.run(lake.spec()), str(day2), "'amount'", "'abc'", "row 3")
    lake.unchanged()


@pytest.mark.parametrize("bad", ["2026-02-30T10:00:00", "yesterday"])
def test_csv_event_time_that_is_not_a_timestamp(file_lake: tuple[Lake, Path], bad: str) -> None:
    lake, day2 = file_lake
    df = pl.read_csv(day2, infer_schema=False)
    df = df.with_columns(event_time=pl.when(pl.int_range(pl.len()) == 4).then(pl.lit(bad))
                         .otherwise(pl.col("event_time")))
    df.write_csv(day2)
    one_clear_line(lake.run(lake.spec()), str(day2), "'event_time'", repr(bad), "row 5")
    lake.unchanged()
    assert pl.read_csv(day2, infer_schema=False)["event_time"][4] == bad  # the file is left as delivered


def test_file_whose_ds_says_another_day(file_lake: tuple[Lake, Path]) -> None:
    lake, day2 = file_lake
    pl.read_csv(day2, infer_schema=False).with_columns(ds=pl.lit("2026-01-05")).write_csv(day2)
    line = one_clear_line(lake.run(lake.spec()), str(day2), "'ds'", "2026-01-05", DAY2)
    assert len(line) < 300, line
    lake.unchanged()


def test_file_missing_a_column(file_lake: tuple[Lake, Path]) -> None:
    lake, day2 = file_lake
    pl.read_csv(day2, infer_schema=False).drop("card_id").write_csv(day2)
    one_clear_line(lake.run(lake.spec()), str(day2), "'card_id'", "missing")
    lake.unchanged()


def test_symlink_loop(file_lake: tuple[Lake, Path]) -> None:
    lake, day2 = file_lake
    day2.unlink()
    os.symlink(day2, day2)
    one_clear_line(lake.run(lake.spec()), str(day2), "symbolic link loop")
    lake.unchanged()


def test_missing_input_file(file_lake: tuple[Lake, Path]) -> None:
    lake, day2 = file_lake
    day2.unlink()
    one_clear_line(lake.run(lake.spec()), str(day2), "missing")
    lake.unchanged()


@pytest.mark.parametrize("column, bad", [("amount", "12,50 EUR"), ("card_id", "card-x")])
def test_csv_wrong_type_in_the_first_regions_file_names_file_column_and_row(
    file_lake: tuple[Lake, Path], column: str, bad: str,
) -> None:
    """The first region's file is the one preflight reads the columns from: a wrong value there
    is the file, the column and the row, not the transform failing on empty inputs."""
    lake, _ = file_lake
    first = lake.tmp / "landing" / "eu-west" / f"{DAY2}.csv"
    df = pl.read_csv(first, infer_schema=False)
    df = df.with_columns(pl.when(pl.int_range(pl.len()) == 6).then(pl.lit(bad)).otherwise(pl.col(column)).alias(column))
    df.write_csv(first)
    line = one_clear_line(lake.run(lake.spec()), str(first), repr(column), repr(bad), "row 7")
    assert "empty inputs" not in line, line
    out = lake.run(lake.spec(), "--json")
    assert out.exit_code == 2
    err = json.loads(out.stdout.strip() or out.stderr.strip())
    assert str(first) in json.dumps(err) and column in json.dumps(err), err
    lake.unchanged()


@pytest.mark.parametrize("region", ["eu-west", "eu-central"])
def test_csv_wrong_type_on_a_first_run_names_file_column_and_row(file_lake: tuple[Lake, Path], region: str) -> None:
    """No table stored yet and no declared columns: the files themselves say what a column is."""
    lake, _ = file_lake
    bad_file = lake.tmp / "landing" / region / f"{DAY2}.csv"
    df = pl.read_csv(bad_file, infer_schema=False)
    df.with_columns(amount=pl.when(pl.int_range(pl.len()) == 9).then(pl.lit("n/a")).otherwise(pl.col("amount"))
                    ).write_csv(bad_file)
    fresh = lake.tmp / "fresh-lake"
    out = cli("run", str(lake.spec()), "--date", DAY2, "--root", str(fresh))
    line = one_clear_line(out, str(bad_file), "'amount'", "'n/a'", "row 10")
    assert "empty inputs" not in line, line
    assert not list(fresh.rglob("_delta_log")), "nothing written"
