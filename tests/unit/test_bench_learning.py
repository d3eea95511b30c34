"""The learning benchmark's bookkeeping: what it keeps of a demo run, how runs are compared across seeds
(a stalled run included), and how a data set's name becomes a manifest. Hand-made demo figures; no run."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest

from bench.learn import DatasetError, resolve_dataset, run_record, summarise
from nerloop_local.report.learning_figures import KIND, RunRecord, parse_learning


def demo(seed: int, loop: list[float], random: list[float], *, full: float = 0.9, pool: int = 40,
         per_round: int = 10, requested: int | None = None, answered: int | None = None) -> dict[str, Any]:
    """What `run_demo` returns, with only the keys the benchmark reads."""
    rounds = []
    for number, f1 in enumerate(loop):
        rounds.append({"round": number + 1, "reviewed_documents": per_round * number, "f1": f1,
                       "reviewed_this_round": per_round if number < len(loop) - 1 else 0})
    if answered is not None:
        rounds[-1]["reviewed_this_round"] = answered - per_round * (len(loop) - 1)
    return {
        "seed": seed, "pool_size": pool, "test_documents": 12, "seed_documents": 20,
        "review_budget_per_round": per_round, "rounds_requested": requested or len(loop), "rounds": rounds,
        "full_supervision": {"documents": 20 + pool, "f1": full},
        "random_selection": [{"reviewed_documents": per_round * n, "f1": f1, "draws": [f1]}
                             for n, f1 in enumerate(random)],
    }


def record(figures: dict[str, Any]) -> RunRecord:
    return run_record(figures, seconds=1.234, peak_rss_mb=300.04, rss_growth_mb=50.0)


def test_a_run_keeps_its_curve_as_shares_of_the_pool_and_the_areas_under_it() -> None:
    run = record(demo(0, [0.6, 0.8, 0.7], [0.6, 0.7, 0.7]))

    assert run.reviewed_documents == [0, 10, 20]
    assert run.pool_share == [0.0, 0.25, 0.5]
    # loop: 0.25 · 0.7 + 0.25 · 0.75; random: 0.25 · 0.65 + 0.25 · 0.7; full: 0.9 · 0.5
    assert run.auc == pytest.approx({"loop": 0.3625, "random": 0.3375, "full": 0.45})
    assert run.auc_normalised == pytest.approx({"loop": 0.725, "random": 0.675, "full": 0.9})
    assert (run.rounds_trained, run.stalled, run.unreviewed_at_end) == (3, False, 20)
    assert (run.seconds, run.peak_rss_mb) == (1.23, 300.0)


def test_a_run_with_fewer_versions_than_requested_and_documents_left_has_stalled() -> None:
    run = record(demo(0, [0.6, 0.8], [0.6, 0.7], requested=3))

    assert run.stalled and run.rounds_trained == 2 and run.unreviewed_at_end == 30


def test_a_run_that_reviewed_the_whole_pool_has_not_stalled() -> None:
    run = record(demo(0, [0.6, 0.8], [0.6, 0.7], requested=3, answered=40))

    assert not run.stalled and run.unreviewed_at_end == 0


def test_random_selection_at_other_budgets_than_the_loops_is_refused() -> None:
    figures = demo(0, [0.6, 0.8], [0.6, 0.7])
    figures["random_selection"][1]["reviewed_documents"] = 11

    with pytest.raises(ValueError, match="budgets"):
        record(figures)


def summary(runs: list[RunRecord]) -> Any:
    return summarise(runs, dataset="toy", manifest=Path("toy.manifest"), rounds=3, random_draws=1, threshold=0.95,
                     confidence=0.95, jobs=2, seconds=3.0)


def test_budgets_compare_the_strategies_per_seed_and_a_stalled_run_leaves_its_missing_steps_out() -> None:
    runs = [record(demo(1, [0.6, 0.8], [0.6, 0.7], full=0.8, requested=3)),
            record(demo(0, [0.6, 0.8, 0.9], [0.6, 0.6, 0.7], full=0.9)),
            record(demo(2, [0.7, 0.9, 0.8], [0.7, 0.8, 0.9], full=1.0))]

    result = summary(runs)

    assert [run.seed for run in result.runs] == [0, 1, 2]
    assert result.stalled_seeds == [1] and result.any_stalled
    assert [entry.seeds for entry in result.budgets] == [[0, 1, 2], [0, 1, 2], [0, 2]]
    assert result.budgets[2].reviewed_documents == [20, 20]
    step1 = result.budgets[1].f1
    assert step1.loop.mean == pytest.approx((0.8 + 0.8 + 0.9) / 3, abs=1e-5)
    assert step1.loop_minus_random.mean == pytest.approx((0.2 + 0.1 + 0.1) / 3, abs=1e-5)
    assert step1.loop_of_full is not None
    assert step1.loop_of_full.mean == pytest.approx((0.8 / 0.9 + 1.0 + 0.9) / 3, abs=1e-5)
    # step 2, two seeds: differences 0.2 and -0.1, mean 0.05, sd 0.3 / √2; t(0.95, 1) = 12.706
    last = result.budgets[2].f1.loop_minus_random
    assert (last.mean, last.n) == (pytest.approx(0.05), 2)
    assert last.high == pytest.approx(0.05 + 12.7062 * 0.15, abs=1e-3)


def test_the_area_difference_is_paired_by_seed() -> None:
    runs = [record(demo(0, [0.6, 0.8, 0.7], [0.6, 0.7, 0.7])), record(demo(1, [0.5, 0.6, 0.7], [0.5, 0.6, 0.6]))]

    result = summary(runs)

    # seed 0: 0.3625 - 0.3375; seed 1: (0.1375 + 0.1625) - (0.1375 + 0.15)
    assert result.auc.loop_minus_random.mean == pytest.approx((0.025 + 0.0125) / 2, abs=1e-5)
    assert result.auc_normalised.loop_minus_random.mean == pytest.approx((0.05 + 0.025) / 2, abs=1e-5)


def test_the_record_reads_back_as_a_learning_benchmark() -> None:
    result = summary([record(demo(0, [0.6, 0.8, 0.7], [0.6, 0.7, 0.7]))])

    again = parse_learning(result.model_dump(mode="json"), "toy.json")

    assert again == result and again.kind == KIND
    assert result.budgets[0].f1.loop.low is None  # one seed: no interval


# --- data sets ----------------------------------------------------------------------------------------


def fake_tool(tmp_path: Path) -> Path:
    """Stands in for ../shared/corpora/to_manifest.py: writes its arguments as the manifest, counts its runs."""
    tool = tmp_path / "to_manifest.py"
    tool.write_text(
        "import json, pathlib, sys\n"
        "runs = pathlib.Path(__file__).with_suffix('.runs')\n"
        "runs.write_text(runs.read_text() + 'x' if runs.exists() else 'x')\n"
        "pathlib.Path(sys.argv[2]).write_text(json.dumps(sys.argv[1:]))\n", encoding="utf-8")
    return tool


def test_a_conll_data_set_is_built_once_into_the_cache(tmp_path: Path) -> None:
    tool, cache = fake_tool(tmp_path), tmp_path / "cache"

    name, manifest = resolve_dataset("conll2003-valid-300", cache=cache, tool=tool)
    again = resolve_dataset("conll2003-valid-300", cache=cache, tool=tool)

    assert name == "conll2003-valid-300" and again == (name, manifest)
    assert manifest == cache / "manifests" / "conll2003-en-valid-300.manifest"
    assert manifest.read_text(encoding="utf-8") == (
        f'["conll2003-en", "{manifest}.partial", "--split", "valid", "--max-sentences", "300"]')
    assert tool.with_suffix(".runs").read_text() == "x"


def test_a_failed_build_leaves_no_manifest(tmp_path: Path) -> None:
    tool = tmp_path / "broken.py"
    tool.write_text("import sys\nsys.exit(3)\n", encoding="utf-8")

    with pytest.raises(DatasetError, match="exit status 3"):
        resolve_dataset("conll2003-train-50", cache=tmp_path / "cache", tool=tool)

    assert not list((tmp_path / "cache").rglob("*.manifest*"))


def test_a_manifest_path_is_named_by_its_folder_when_ground_truth_called_it_output(tmp_path: Path) -> None:
    folder = tmp_path / "my data"
    folder.mkdir()
    (folder / "output.manifest").write_text("{}\n", encoding="utf-8")
    (folder / "reviews.manifest").write_text("{}\n", encoding="utf-8")

    assert resolve_dataset(str(folder / "output.manifest")) == ("my-data", folder / "output.manifest")
    assert resolve_dataset(str(folder / "reviews.manifest"))[0] == "reviews"


def test_an_unknown_data_set_is_an_error_naming_the_choices(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="sample, conll2003"):
        resolve_dataset(str(tmp_path / "nothing.manifest"))
    with pytest.raises(DatasetError):
        resolve_dataset("conll2003-train-0", tool=Path(sys.executable))  # no such file, not a CoNLL size


def test_the_sample_is_the_walkthroughs_manifest(sample_dir: Path) -> None:
    assert resolve_dataset("sample") == ("sample", sample_dir / "output.manifest")


def test_the_loops_curve_is_what_the_gate_served_and_kept_versions_are_counted() -> None:
    # Given v2 kept inactive though better on the shared test set (a gate bug), v3 kept and worse
    figures = demo(0, [0.6, 0.8, 0.55], [0.6, 0.7, 0.7])
    gates = [{"status": "ACTIVATED"},
             {"status": "KEPT_INACTIVE", "candidate_f1": 0.9, "active_f1": 0.8},
             {"status": "KEPT_INACTIVE", "candidate_f1": 0.7, "active_f1": 0.8}]
    for entry, gate in zip(figures["rounds"], gates, strict=True):
        entry.update(model_version=f"v{entry['round']}", gate=gate)
    for entry, served in zip(figures["rounds"], [0.6, 0.6, 0.6], strict=True):
        entry["served_f1"] = served
    every_version = demo(0, [0.6, 0.8, 0.55], [])
    for entry in every_version["rounds"]:
        entry["served_f1"] = entry["f1"]

    run = run_record(figures, seconds=1, peak_rss_mb=1, rss_growth_mb=1, every_version=every_version)

    assert run.loop_f1 == [0.6, 0.6, 0.6] and run.every_version_f1 == [0.6, 0.8, 0.55]
    assert run.kept_inactive == ["v2", "v3"]
    assert run.kept_but_better_on_shared_test == ["v2"]
    assert run.kept_but_better_on_benchmark_test == ["v2"]  # 0.8 on the benchmark's test set beat the 0.6 served
    summary = summarise([run], dataset="d", manifest=Path("m"), rounds=3, random_draws=1, threshold=0.9,
                        confidence=0.95, jobs=1, seconds=1.0)
    assert summary.budgets[1].gate_minus_every_version.mean == pytest.approx(-0.2)
