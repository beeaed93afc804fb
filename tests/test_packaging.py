"""A wheel installed without the checkout (pip install . elsewhere) carries everything it needs to run."""

import shutil
import subprocess
import sys
import sysconfig
import venv
from pathlib import Path

from tests.cli import PROJECT_ROOT, cli_environment


def project_files() -> list[str]:
    listed = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard"], cwd=PROJECT_ROOT,
                            check=True, capture_output=True, text=True).stdout
    return [name for name in listed.splitlines() if (PROJECT_ROOT / name).is_file()]


def test_an_installed_wheel_migrates_and_checks_from_any_folder(tmp_path: Path) -> None:
    # given: a wheel built from a copy of the project (setuptools leaves a build/ folder behind)
    source = tmp_path / "source"
    for name in project_files():
        (source / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(PROJECT_ROOT / name, source / name)
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(tmp_path / "dist"), str(source)],
                   check=True, capture_output=True, timeout=300)
    [wheel] = (tmp_path / "dist").glob("auditgraph-*.whl")
    shutil.rmtree(source)

    # and: a fresh environment with the wheel installed, its dependencies borrowed from this one
    target = tmp_path / "venv"
    venv.create(target, with_pip=False)
    python = target / "bin" / "python"
    subprocess.run([sys.executable, "-m", "pip", "--python", str(python), "install", "--no-deps", "-q", str(wheel)],
                   check=True, capture_output=True, timeout=300)
    site_packages = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                                   check=True, capture_output=True, text=True).stdout.strip()
    # Appended after the wheel's own files: this environment's editable install does not take over.
    (Path(site_packages) / "zz-dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    work = tmp_path / "elsewhere"
    work.mkdir()

    def auditgraph(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([str(target / "bin" / "auditgraph"), *args], cwd=work, env=cli_environment(),
                              capture_output=True, text=True, timeout=120)

    # when
    migrated = auditgraph("migrate")
    checked = auditgraph("check")
    where = subprocess.run([str(python), "-c", "import graph; print(graph.__file__)"], cwd=work,
                           capture_output=True, text=True, check=True).stdout

    # then
    assert migrated.returncode == 0, migrated.stderr
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert f"data in {work / 'data'}" in checked.stdout
    assert where.startswith(site_packages)
