"""router-py: the checks made before componentize-py runs, and the packaging."""

import filecmp
import subprocess
import sys
from pathlib import Path

import pytest

from router_guest import build

REPO = Path(__file__).resolve().parents[3]


def test_the_shipped_wit_is_the_repositorys():
    assert filecmp.cmp(build.wit_path(), REPO / "wit" / "router.wit", shallow=False)


def project(tmp_path, router_table, module="app.py"):
    (tmp_path / "pyproject.toml").write_text(f"[project]\nname = 'demo'\n[tool.router]\n{router_table}\n")
    if module:
        (tmp_path / module).write_text("")
    return tmp_path


@pytest.mark.parametrize(
    "table, message",
    [
        ('world = "other"\nmodule = "app"', "expected one of handler, transform"),
        ('world = "handler"', "module must name a Python module"),
        ('module = "handler"', "clashes with a generated module"),
        ('module = "missing"', "module 'missing' not found"),
        ('module = "app"\npython-path = ["nowhere"]', "is not a directory"),
    ],
)
def test_bad_projects_are_refused_with_the_reason(tmp_path, table, message):
    with pytest.raises(build.BuildError, match=message):
        build._project(project(tmp_path, table))


def test_a_project_is_read_with_its_defaults(tmp_path):
    spec = build._project(project(tmp_path, 'module = "app"'))
    assert spec["world"] == "handler" and spec["name"] == "demo" and spec["dirs"] == [tmp_path.resolve()]
    assert spec["stub_wasi"] is False


def test_a_missing_pyproject_says_so(tmp_path):
    with pytest.raises(build.BuildError, match="pyproject.toml: no such file"):
        build._project(tmp_path)


def test_a_missing_componentize_py_is_a_clear_error(monkeypatch, tmp_path, capsys):
    from importlib import metadata

    def missing(name):
        raise metadata.PackageNotFoundError(name)

    monkeypatch.setattr(metadata, "version", missing)
    assert build.main(["build", str(project(tmp_path, 'module = "app"'))]) == 1
    assert "componentize-py is not installed" in capsys.readouterr().err


def test_the_command_line_runs_as_a_module():
    out = subprocess.run([sys.executable, "-m", "router_guest", "wit"], capture_output=True, text=True,
                         env={"PYTHONPATH": str(REPO / "guest-sdk" / "python" / "src")}, check=True)
    assert out.stdout.strip().endswith("router_guest/wit/router.wit")
