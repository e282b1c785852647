"""mrrp as someone installs it: the shipped files are found through one resolver, and a wheel built from this
tree, installed into a fresh virtualenv outside the repository, works on its own (the ``mrrp`` command, a
prediction with each bundled model, the dashboard under ``streamlit run``)."""

from __future__ import annotations

import ast
import json
import os
import signal
import socket
import subprocess
import sys
import sysconfig
import time
import tomllib
import urllib.request
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

import pytest
from conftest import CLINICAL_RECORD, REPO

from mrrp import resources
from mrrp.dashboard.launch import dashboard_command, streamlit_flags
from mrrp.errors import InputError

BUILD_TIMEOUT_S = 300
RUN_TIMEOUT_S = 300


# -- the resolver and the launcher, in this checkout ---------------------------------------------------


def test_checkout_resolves_every_shipped_file_to_the_repository() -> None:
    assert resources.bundled_root() == REPO
    assert resources.bundled_model_dir("mrrp-demo") == REPO / "assets" / "models" / "mrrp-demo"
    assert resources.bundled_model_dir("pcr-demo") == REPO / "assets" / "models" / "pcr-demo"
    for rel in resources.SHIPPED:
        assert resources.bundled_path(rel).exists(), rel
    with pytest.raises(ValueError, match="not a bundled model"):
        resources.bundled_model_dir("site-a")


def test_every_lookup_of_a_bundled_model_uses_the_resolver() -> None:
    from mrrp.dashboard.models import BUNDLED_MODEL_DIR
    from mrrp.dashboard.performance import BUNDLED_REPORT
    from mrrp.dashboard.reference import MODEL_REPORT
    from mrrp.pcr.predict import DEFAULT_MODEL_DIR

    assert BUNDLED_MODEL_DIR == resources.bundled_model_dir("mrrp-demo")
    assert DEFAULT_MODEL_DIR == resources.bundled_model_dir("pcr-demo")
    assert BUNDLED_REPORT == MODEL_REPORT == resources.bundled_path(resources.MODEL_REPORT)
    # No other module climbs from its own file to the repository's top level (which an installed copy lacks).
    offenders = [
        str(p.relative_to(REPO))
        for p in [*(REPO / "mrrp").rglob("*.py"), REPO / "app.py", *(REPO / "pages").glob("*.py")]
        if any(climb in p.read_text() for climb in ("parents[2]", "parent.parent.parent", 'page_icon="assets'))
    ]
    assert offenders == []


def test_dashboard_flags_carry_every_project_setting() -> None:
    config = tomllib.loads((REPO / ".streamlit" / "config.toml").read_text())
    flags = streamlit_flags()
    passed = dict(zip(flags[::2], flags[1::2], strict=True))
    expected = {
        f"--{section}.{name}": (str(value).lower() if isinstance(value, bool) else str(value))
        for section, options in config.items()
        for name, value in options.items()
    }
    assert passed == expected
    # what keeps patient data on the machine, whatever folder the dashboard is started from
    assert passed["--browser.gatherUsageStats"] == "false"
    assert passed["--server.address"] == passed["--browser.serverAddress"] == "127.0.0.1"
    assert passed["--server.enableXsrfProtection"] == "true"


def test_dashboard_command_runs_the_shipped_app_with_overrides_last() -> None:
    cmd = dashboard_command(port=8600)
    assert cmd[:5] == [sys.executable, "-m", "streamlit", "run", str(resources.bundled_path(resources.APP_SCRIPT))]
    assert cmd[-2:] == ["--server.port", "8600"]  # click keeps the last value of a repeated option
    assert dashboard_command(address="10.0.0.5")[-2:] == ["--server.address", "10.0.0.5"]
    with pytest.raises(InputError, match="not a port number"):
        dashboard_command(port=70000)


def _third_party_imports() -> set[str]:
    names: set[str] = set()
    for path in [*(REPO / "mrrp").rglob("*.py"), REPO / "app.py", *(REPO / "pages").glob("*.py")]:
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                names |= {alias.name.split(".")[0] for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names.add(node.module.split(".")[0])
    return names - set(sys.stdlib_module_names) - {"mrrp", "__future__"}


def test_declared_dependencies_cover_every_import() -> None:
    """``pip install .`` with dependencies must bring every package the code imports."""

    def canonical(name: str) -> str:
        return name.lower().replace("_", "-").replace(".", "-")

    declared = {
        canonical(req.split(";")[0].split("[")[0].split("=")[0].split("<")[0].split(">")[0].strip())
        for req in tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["dependencies"]
    }
    providers = metadata.packages_distributions()
    undeclared = {
        name: providers.get(name)
        for name in _third_party_imports()
        if not {canonical(d) for d in providers.get(name, [])} & declared
    }
    assert undeclared == {}


# -- a wheel in a fresh virtualenv ----------------------------------------------------------------------


@dataclass(frozen=True)
class Installed:
    python: Path
    bin: Path
    site_packages: Path
    workdir: Path  # outside the repository
    env: dict[str, str]

    def run(self, *argv: str | Path, timeout: float = RUN_TIMEOUT_S) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(a) for a in argv], cwd=self.workdir, env=self.env, capture_output=True, text=True, timeout=timeout
        )


def _check(proc: subprocess.CompletedProcess[str]) -> subprocess.CompletedProcess[str]:
    assert proc.returncode == 0, f"{proc.args}\nstdout:\n{proc.stdout[-3000:]}\nstderr:\n{proc.stderr[-3000:]}"
    return proc


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Installed:
    """``python -m build`` (sdist, then the wheel from it), installed with --no-deps into a new virtualenv.

    The project's dependencies come from this environment's site-packages through a plain path line in a
    .pth file: such a line does not run that folder's own .pth files, so the editable install of mrrp there
    (a finder loaded by a .pth) stays invisible, and only the wheel's mrrp can be imported.
    """
    tmp = tmp_path_factory.mktemp("wheel")
    dist = tmp / "dist"
    _check(
        subprocess.run(
            [sys.executable, "-m", "build", "--no-isolation", "--outdir", str(dist), str(REPO)],
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=BUILD_TIMEOUT_S,
        )
    )
    (wheel,) = dist.glob("mrrp-*.whl")
    venv = tmp / "venv"
    _check(subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], capture_output=True, text=True))
    python = venv / "bin" / "python"
    site_packages = Path(
        _check(
            subprocess.run(
                [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                capture_output=True,
                text=True,
            )
        ).stdout.strip()
    )
    ours = dict.fromkeys([sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]])
    (site_packages / "mrrp_test_dependencies.pth").write_text("".join(f"{p}\n" for p in ours))
    _check(
        subprocess.run(
            [sys.executable, "-m", "pip", "--python", str(python), "--disable-pip-version-check"]
            + ["install", "--no-deps", "--no-index", "--no-compile", str(wheel)],
            capture_output=True,
            text=True,
            timeout=BUILD_TIMEOUT_S,
        )
    )
    workdir = tmp / "elsewhere"
    workdir.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME")}
    env |= {
        "PYTHONNOUSERSITE": "1",
        "MRRP_CACHE_DIR": str(tmp / "cache"),
        "MRRP_MODELS_DIR": str(tmp / "models"),
        "MRRP_HISTORY_DB": str(tmp / "history.sqlite"),
        "MRRP_SLIDE_DIR": str(tmp / "slides"),
        "PATH": f"{venv / 'bin'}{os.pathsep}{env.get('PATH', '')}",
    }
    return Installed(python, venv / "bin", site_packages, workdir, env)


@pytest.mark.slow
def test_wheel_carries_the_dashboard_and_the_bundled_models(installed: Installed) -> None:
    probe = """
import json, mrrp
from mrrp import resources
from mrrp.dashboard.models import BUNDLED_MODEL_DIR
from mrrp.pcr.predict import DEFAULT_MODEL_DIR
root = resources.bundled_root()
print(json.dumps({
    "mrrp": mrrp.__file__, "root": str(root), "models": [str(BUNDLED_MODEL_DIR), str(DEFAULT_MODEL_DIR)],
    "missing": [rel for rel in resources.SHIPPED if not resources.bundled_path(rel).exists()],
    "pages": sorted(p.name for p in (root / "pages").glob("*.py")),
    "files": sorted(str(p.relative_to(root)) for p in (root / "assets").rglob("*") if p.is_file()),
}))
"""
    found = json.loads(_check(installed.run(installed.python, "-c", probe)).stdout)
    package = installed.site_packages / "mrrp"
    assert Path(found["mrrp"]) == package / "__init__.py", "the wheel's mrrp, not the checkout's"
    assert Path(found["root"]) == package / resources.INSTALLED_SUBDIR
    assert found["models"] == [str(Path(found["root"]) / "assets" / "models" / m) for m in ("mrrp-demo", "pcr-demo")]
    assert found["missing"] == []
    assert found["pages"] == sorted(p.name for p in (REPO / "pages").glob("*.py"))
    assert found["files"] == sorted(
        str(p.relative_to(REPO)) for p in (REPO / "assets").rglob("*") if p.is_file() and "__pycache__" not in p.parts
    )


@pytest.mark.slow
def test_installed_command_predicts_with_each_bundled_model(installed: Installed, tmp_path: Path) -> None:
    from mrrp.io.manifest import write_manifest
    from mrrp.pcr.demo import ensure_pcr_demos

    usage = _check(installed.run(installed.bin / "mrrp", "--help")).stdout
    assert "dashboard" in usage and "predict" in usage

    report = tmp_path / "path_report.txt"
    report.write_text(
        "Invasive carcinoma of no special type, grade 2, 22 mm. ER 95%, PR 40%, HER2 negative. Ki-67 18%.\n"
        "One of twelve lymph nodes positive. No lymphovascular invasion.\n"
    )
    manifest = write_manifest(
        [{"patient_id": "P-1", "site": "here", "split": "predict", "path_report_path": report.name, **CLINICAL_RECORD}],
        tmp_path / "manifest.csv",
    )
    out = _check(installed.run(installed.bin / "mrrp", "predict", "--manifest", manifest, "--json")).stdout
    (pred,) = json.loads(out)["predictions"]
    assert pred["patient_id"] == "P-1" and pred["risk_group"] in ("low", "intermediate", "high")
    assert pred["model_version"].startswith("mrrp-demo@")
    assert pred["present"] == {"slide": False, "ultrasound": False, "path_report": True, "clinical": True}
    assert all(0 < p < 1 for p in pred["recurrence"].values()) and set(pred["recurrence"]) == {"36", "60", "84"}

    demo = next(iter(ensure_pcr_demos(tmp_path / "cache").values()))
    out = _check(installed.run(installed.bin / "mrrp", "pcr-predict", "--mri", demo.mri, "--json")).stdout
    pcr = json.loads(out)
    lo, hi = pcr["interval95"]
    assert 0 <= lo <= pcr["pcr_probability"] <= hi <= 1
    assert [s["stage"] for s in pcr["stages"]] == ["image_only", "guided", "with_clinical"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_installed_dashboard_serves_and_finds_the_bundled_models(installed: Installed, tmp_path: Path) -> None:
    port = _free_port()
    server = subprocess.Popen(
        [str(installed.bin / "mrrp"), "dashboard", "--port", str(port)],
        cwd=installed.workdir,
        env=installed.env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,  # its own process group: mrrp and the streamlit it starts stop together
    )
    no_proxy = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # 127.0.0.1 only, never a proxy
    try:
        deadline = time.monotonic() + 120
        health = None
        while time.monotonic() < deadline and server.poll() is None:
            try:
                with no_proxy.open(f"http://127.0.0.1:{port}/_stcore/health", timeout=5) as response:
                    health = (response.status, response.read().decode())
                    break
            except OSError:
                time.sleep(0.5)
        assert health == (200, "ok"), f"no answer on port {port}"
        with no_proxy.open(f"http://127.0.0.1:{port}/", timeout=10) as response:
            assert response.status == 200 and "<html" in response.read().decode().lower()
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        log, _ = server.communicate(timeout=30)
    assert f"127.0.0.1:{port}" in log

    # The same installed app under Streamlit's AppTest: the shell with the bundled model, the pCR page with its
    # bundled model, and the performance page with the bundled model's report.
    probe = tmp_path / "probe.py"
    probe.write_text(
        """
import json, sys
from streamlit.testing.v1 import AppTest
from mrrp.resources import APP_SCRIPT, bundled_path
at = AppTest.from_file(str(bundled_path(APP_SCRIPT)), default_timeout=180).run()
shell = {
    "script": str(bundled_path(APP_SCRIPT)),
    "exception": [str(e.value) for e in at.exception], "errors": [e.value for e in at.error],
    "title": [t.value for t in at.title], "model": at.selectbox(key="model_choice").value,
    "captions": [c.value for c in at.sidebar.caption],
}
def page(path):
    at.switch_page(path).run()
    return {"exception": [str(e.value) for e in at.exception], "errors": [e.value for e in at.error],
            "title": [t.value for t in at.title], "metrics": [m.label for m in at.metric],
            "info": [i.value for i in at.info]}
seen = {"shell": shell, "pcr": page("pages/pcr.py"), "cohort": page("pages/cohort.py")}
with open(sys.argv[1], "w") as fh:
    json.dump(seen, fh)
"""
    )
    result = tmp_path / "probe.json"
    _check(installed.run(installed.python, probe, result))
    seen = json.loads(result.read_text())
    shell, pcr, cohort = seen["shell"], seen["pcr"], seen["cohort"]
    assert Path(shell["script"]).is_relative_to(installed.site_packages)
    assert shell["exception"] == [] and shell["errors"] == [], shell
    assert shell["title"][0] == "Patient review" and shell["model"] == "mrrp-demo (bundled)"
    assert any(c.startswith("Version `mrrp-demo@") for c in shell["captions"]), shell["captions"]
    assert pcr["exception"] == [] and pcr["errors"] == [], pcr  # the page says so when its bundle is missing
    assert pcr["title"]
    # the bundled model's evaluation report ships too: the performance page shows its C-index per site
    assert cohort["exception"] == [] and cohort["errors"] == [], cohort
    assert cohort["metrics"] == ["C-index, internal test set", "C-index, external site"], cohort
    assert not any("No evaluation" in i for i in cohort["info"])
