"""The cold-start benchmark imports what `make build` deploys, in an interpreter that sees only the
standard library, the function's folder and the layer, with the environment Lambda gives."""

from __future__ import annotations

import compileall
import importlib.util
import os
import shutil
from pathlib import Path
from typing import Any

import pytest

from bench import run
from bench.inputs import QUICK, Row
from bench.measure import REPO
from bench.run import LAYER_ID, check_build, lambda_env, time_import

FUNCTION = "ConvertFunction"
CODE = REPO / "functions/convert"


@pytest.fixture
def build(tmp_path: Path) -> Path:
    """A build folder like `make build`'s for one function: its app.py and the layer's nerloop, compiled."""
    shutil.copytree(REPO / "layers/common/nerloop", tmp_path / LAYER_ID / "python/nerloop",
                    ignore=shutil.ignore_patterns("__pycache__"))
    (tmp_path / FUNCTION).mkdir()
    shutil.copy(CODE / "app.py", tmp_path / FUNCTION / "app.py")
    assert compileall.compile_dir(tmp_path, quiet=1)
    return tmp_path


def test_a_current_compiled_build_is_accepted(build: Path) -> None:
    check_build(build, {FUNCTION: CODE})


def test_a_missing_build_asks_for_make_build(tmp_path: Path) -> None:
    with pytest.raises(RuntimeError, match="run `make build`"):
        check_build(tmp_path / "absent", {FUNCTION: CODE})


def test_a_build_older_than_the_source_asks_for_make_build(build: Path) -> None:
    built = build / LAYER_ID / "python/nerloop/settings.py"
    built.write_text(built.read_text(encoding="utf-8") + "\n# an older version\n", encoding="utf-8")
    with pytest.raises(RuntimeError, match="older than the source"):
        check_build(build, {FUNCTION: CODE})


def test_a_build_without_pyc_files_asks_for_make_build(build: Path) -> None:
    shutil.rmtree(build / LAYER_ID / "python/nerloop/__pycache__")
    with pytest.raises(RuntimeError, match=r"no \.pyc"):
        check_build(build, {FUNCTION: CODE})


def test_the_function_environment_is_the_template_and_lambda_not_this_machine(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NERLOOP_ONLY_ON_THIS_MACHINE", "1")
    env = lambda_env(FUNCTION, tracing=False)
    assert "NERLOOP_ONLY_ON_THIS_MACHINE" not in env
    assert env["POWERTOOLS_SERVICE_NAME"] == "nerloop-convert" and env["STATE_TABLE"]
    assert env["LAMBDA_TASK_ROOT"] == "/var/task" and env["AWS_LAMBDA_FUNCTION_NAME"] == FUNCTION
    assert env["POWERTOOLS_TRACE_DISABLED"] == "true"
    assert lambda_env(FUNCTION, tracing=True)["POWERTOOLS_TRACE_DISABLED"] == "false"


@pytest.fixture
def folders(tmp_path: Path) -> tuple[Path, Path]:
    code, layer = tmp_path / "task", tmp_path / "opt"
    code.mkdir()
    layer.mkdir()
    (code / "app.py").write_text("import json\nimport shared\n", encoding="utf-8")
    (layer / "shared.py").write_text("VALUE = 1\n", encoding="utf-8")
    return code, layer


def test_an_import_is_timed_and_its_modules_counted_by_origin(folders: tuple[Path, Path]) -> None:
    code, layer = folders
    probe = time_import("import app", code, layer, {"PATH": os.environ["PATH"]})
    assert probe["seconds"] > 0
    assert Path(probe["files"]["app"]).resolve() == (code / "app.py").resolve()
    assert probe["origins"]["function"] == 1 and probe["origins"]["layer"] == 1 and probe["origins"]["stdlib"] > 0
    assert not probe["xray"]


def test_packages_installed_only_in_this_environment_are_out_of_reach(folders: tuple[Path, Path]) -> None:
    # moto is in the venv's site-packages, never in the layer: an interpreter started with -S cannot see it.
    code, layer = folders
    assert importlib.util.find_spec("moto") is not None
    with pytest.raises(RuntimeError, match="ModuleNotFoundError"):
        time_import("import moto", code, layer, {"PATH": os.environ["PATH"]})


def test_cold_start_is_information_with_no_target_to_meet(monkeypatch: pytest.MonkeyPatch) -> None:
    # Given imports that take 1.5x `import boto3` (what the functions measure today)
    def timed(statements: str, *_: Any) -> dict[str, Any]:
        seconds = 0.2 if statements == "import boto3" else 0.3
        return {"seconds": seconds, "xray": False, "files": {}, "origins": {}, "sys_path": []}

    monkeypatch.setattr(run, "check_build", lambda *_: None)
    monkeypatch.setattr(run, "time_import", timed)
    results: dict[str, Any] = {}
    rows: list[Row] = []
    # When the cold-start rows run
    run.bench_cold_start(QUICK, results, rows)
    # Then every row is information: no threshold, nothing met or missed
    assert rows and all(row.target == "(information)" and row.ok is None for row in rows)
    assert all("pass" not in entry for entry in results["cold_start"]["functions"])
