"""router-py: the checks made before componentize-py runs, and the packaging."""

import filecmp
import importlib.util
import os
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


def _component_imports(wasm: bytes):
    """The names of a component's top-level imports (its import section)."""

    def leb(i):
        result = shift = 0
        while True:
            byte = wasm[i]
            i += 1
            result |= (byte & 0x7F) << shift
            shift += 7
            if byte < 0x80:
                return result, i

    def name(i):
        n, i = leb(i)
        return wasm[i:i + n].decode(), i + n

    names, i = [], 8
    while i < len(wasm):
        section, (size, j) = wasm[i], leb(i + 1)
        if section == 10:
            count, k = leb(j)
            for _ in range(count):
                flavour = wasm[k]
                imported, k = name(k + 1)
                if flavour == 1:  # a version suffix follows
                    _, k = name(k)
                kind = wasm[k]
                k += 1
                if kind == 0:  # core module: 0x11 then a type index
                    _, k = leb(k + 1)
                elif kind == 3:  # type bound: eq has an index, sub resource none
                    bound = wasm[k]
                    k += 1
                    if bound == 0:
                        _, k = leb(k)
                elif kind == 2:  # value type: primitive byte or 0x00 + index
                    if wasm[k] == 0:
                        _, k = leb(k + 1)
                    else:
                        k += 1
                else:
                    _, k = leb(k)
                names.append(imported)
        i = j + size
    return names


@pytest.mark.skipif(
    importlib.util.find_spec("componentize_py") is None, reason="componentize-py is not installed"
)
def test_a_plugin_builds_into_a_component_of_the_routers_world(tmp_path):
    # The whole path, as the router's build runs it: from another directory,
    # the SDK found through PYTHONPATH. Slow (a componentize-py run, 10-30 s).
    out = tmp_path / "enricher.wasm"
    subprocess.run(
        [sys.executable, "-m", "router_guest", "build", str(REPO / "plugins" / "python" / "enricher"), "-o", str(out)],
        cwd=tmp_path, check=True, env={**os.environ, "PYTHONPATH": str(REPO / "guest-sdk" / "python" / "src")},
    )
    wasm = out.read_bytes()
    assert wasm[:8] == b"\0asm\x0d\0\x01\0", "a component, not a core module"
    imports = _component_imports(wasm)
    for interface in ("log", "config", "kv", "types"):
        assert f"router:plugin/{interface}@0.2.0" in imports, imports
