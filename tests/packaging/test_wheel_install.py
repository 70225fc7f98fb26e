"""The release a store installs: the abi3 wheel in a fresh virtualenv with no Rust toolchain on
PATH, and the sdist that builds it from source.

Both are built once per session, or taken from ``make dist`` when its files are newer than every
source. The wheel reuses the core cargo built for ``make install`` (pip builds in the source
tree, into native/target), so it takes seconds; installing it pulls the runtime dependencies
from the package index.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tomllib
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.senders.conftest import command

ROOT = Path(__file__).resolve().parents[2]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text("utf-8"))
VERSION: str = PYPROJECT["project"]["version"]
SOURCES = (
    "pyproject.toml",
    "setup.cfg",
    "MANIFEST.in",
    "README.md",
    "native",
    "streams",
    "senders",
)
BUILD_OUTPUT = {"target", "__pycache__"}  # folders of build output among the sources
BUILT = {".so", ".pyc"}
BOUNDARY = re.compile(rb"={15}\d+==")

# REES46 rows: a cart left behind, a cart bought, a product only viewed.
REES46 = """\
event_time,event_type,product_id,category_id,category_code,brand,price,user_id,user_session
2019-10-01 00:00:00 UTC,view,44600062,2103807459595387724,,shiseido,35.79,541312140,72d76fde-8bb3-4e00-8c23-a032dfed738c
2019-10-01 00:01:00 UTC,cart,44600062,2103807459595387724,,shiseido,35.79,541312140,72d76fde-8bb3-4e00-8c23-a032dfed738c
2019-10-01 00:02:00 UTC,view,3900821,2053013552326770905,appliances.environment.water_heater,aqua,33.20,554748717,9333dfbd-b87a-4708-9857-6336556b0fcc
2019-10-01 00:03:00 UTC,cart,3900821,2053013552326770905,appliances.environment.water_heater,aqua,33.20,554748717,9333dfbd-b87a-4708-9857-6336556b0fcc
2019-10-01 00:04:00 UTC,purchase,3900821,2053013552326770905,appliances.environment.water_heater,aqua,33.20,554748717,9333dfbd-b87a-4708-9857-6336556b0fcc
2019-10-01 02:00:00 UTC,view,1307067,2053013558920217191,computers.notebook,lenovo,251.74,550050854,7c90fc70-0e80-4590-96f3-13c02c18c713
"""


def _newest_source() -> float:
    files = [ROOT / name for name in SOURCES if (ROOT / name).is_file()]
    for name in SOURCES:
        for folder, subfolders, names in os.walk(ROOT / name):
            subfolders[:] = [d for d in subfolders if d not in BUILD_OUTPUT]
            files += [Path(folder, n) for n in names if Path(n).suffix not in BUILT]
    return max(f.stat().st_mtime for f in files)


def _fresh_from_make_dist(pattern: str) -> Path | None:
    built = sorted((ROOT / "dist").glob(pattern))
    if len(built) == 1 and built[0].stat().st_mtime > _newest_source():
        return built[0]
    return None


def _cargo() -> str:
    home = Path(os.environ.get("CARGO_HOME", Path.home() / ".cargo"))
    found = shutil.which("cargo") or shutil.which("cargo", path=str(home / "bin"))
    assert found, "building the wheel needs cargo (PATH or ~/.cargo/bin): run make install"
    return found


def _run(
    args: list[str | Path],
    env: dict[str, str] | None = None,
    cwd: Path | None = None,
    timeout: float = 300,
) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        [str(arg) for arg in args],
        env=env, cwd=cwd, timeout=timeout, capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert done.returncode == 0, (args, done.stdout[-3000:], done.stderr[-3000:])
    return done


@pytest.fixture(scope="session")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    reused = _fresh_from_make_dist(f"cartpulse-{VERSION}-*.whl")
    if reused:
        return reused
    out = tmp_path_factory.mktemp("wheel")
    path = f"{Path(_cargo()).parent}{os.pathsep}{os.environ['PATH']}"
    _run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--wheel-dir", out, ROOT],
         env={**os.environ, "PATH": path}, timeout=900)  # fmt: skip
    (built,) = out.glob("*.whl")
    return built


@pytest.fixture(scope="session")
def sdist(tmp_path_factory: pytest.TempPathFactory) -> Path:
    reused = _fresh_from_make_dist(f"cartpulse-{VERSION}.tar.gz")
    if reused:
        return reused
    out = tmp_path_factory.mktemp("sdist")
    _run([sys.executable, "-m", "build", "-q", "--sdist", "--outdir", out, ROOT], timeout=300)
    (built,) = out.glob("*.tar.gz")
    return built


@dataclass(frozen=True)
class Installed:
    """A virtualenv holding only the wheel and what it depends on."""

    bin: Path
    env: dict[str, str]  # no cargo on PATH, no CARTPULSE_ settings
    cwd: Path  # outside the source tree, so nothing imports from it

    def run(self, *args: str) -> subprocess.CompletedProcess[str]:
        return _run([self.bin / args[0], *args[1:]], env=self.env, cwd=self.cwd, timeout=300)


def _without_cargo(path: str) -> str:
    return os.pathsep.join(d for d in path.split(os.pathsep) if not shutil.which("cargo", path=d))


@pytest.fixture(scope="session")
def installed(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Installed]:
    home = tmp_path_factory.mktemp("store")
    venv = home / "venv"
    _run([sys.executable, "-m", "venv", venv], timeout=120)
    keep = {k: v for k, v in os.environ.items() if not k.startswith(("CARTPULSE_", "CARGO"))}
    for name in ("RUSTUP_HOME", "VIRTUAL_ENV", "PYTHONPATH", "PYTHONHOME"):
        keep.pop(name, None)
    env = keep | {"PATH": f"{venv / 'bin'}{os.pathsep}{_without_cargo(keep['PATH'])}"}
    assert shutil.which("cargo", path=env["PATH"]) is None
    assert shutil.which("rustc", path=env["PATH"]) is None
    store = Installed(venv / "bin", env, home)
    # --only-binary: nothing, cartpulse or a dependency, may need a compiler
    store.run("pip", "install", "-q", "--only-binary", ":all:", str(wheel))
    yield store


def _name(requirement: str) -> str:
    match = re.match(r"[A-Za-z0-9._-]+", requirement)
    assert match, requirement
    return re.sub(r"[-_.]+", "-", match.group()).lower()


def test_the_wheel_is_abi3_and_ships_every_data_file(wheel: Path) -> None:
    assert re.fullmatch(rf"cartpulse-{re.escape(VERSION)}-cp311-abi3-linux_x86_64\.whl", wheel.name)
    names = set(zipfile.ZipFile(wheel).namelist())
    shipped = {
        f.relative_to(ROOT).as_posix()
        for pattern in ("senders/messages/templates/*.j2", "streams/policies/*.toml")
        for f in ROOT.glob(pattern)
    }
    assert {
        "senders/messages/templates/_layout.html.j2",
        "streams/policies/default.toml",
    } <= shipped
    assert shipped <= names
    assert {"streams/py.typed", "senders/py.typed", "streams/_native.pyi"} <= names
    assert "streams/_native.abi3.so" in names
    assert not {n for n in names if n.startswith(("tests/", "native/", "data/", "deploy/"))}


def test_the_sdist_carries_the_rust_core_to_build_from_source(sdist: Path) -> None:
    import tarfile

    top = f"cartpulse-{VERSION}/"
    with tarfile.open(sdist) as archive:
        names = {n.removeprefix(top) for n in archive.getnames()}
    rust = {f.relative_to(ROOT).as_posix() for f in (ROOT / "native" / "src").glob("*.rs")}
    assert {"native/Cargo.toml", "native/Cargo.lock", "pyproject.toml", "setup.cfg"} <= names
    assert rust and rust <= names
    assert "senders/messages/templates/_layout.html.j2" in names
    assert not {n for n in names if n.startswith("native/target") or n.endswith(".so")}


def test_pip_installs_the_runtime_dependencies_and_nothing_else(installed: Installed) -> None:
    listing = installed.run("python", "-c", "import importlib.metadata as m, json; "
                            "print(json.dumps([d.metadata['Name'] for d in m.distributions()]))")  # fmt: skip
    present = {_name(n) for n in json.loads(listing.stdout)}
    runtime = {_name(r) for r in PYPROJECT["project"]["dependencies"]}
    extras = {_name(r) for group in PYPROJECT["project"]["optional-dependencies"].values()
              for r in group}  # fmt: skip
    assert runtime | {"cartpulse"} <= present
    assert not extras & present, sorted(extras & present)
    installed.run("pip", "check")
    where = installed.run("python", "-c", "import streams._native, senders; "
                          "print(streams._native.__file__); print(senders.__file__)")  # fmt: skip
    for module in where.stdout.split():
        assert Path(module).is_relative_to(installed.bin.parent), module


def test_the_wheel_leaves_the_test_hooks_out(installed: Installed) -> None:
    """The native core's ``test-hooks`` cargo feature stays off in the wheel."""
    hooks = installed.run("python", "-c", "import streams._native as n; "
                          "print(sorted(h for h in ('abandonment_id', 'amount') if hasattr(n, h)))")  # fmt: skip
    assert hooks.stdout == "[]\n"


def test_the_installed_command_says_its_version(installed: Installed) -> None:
    assert installed.run("cartpulse", "--version").stdout == f"cartpulse {VERSION}\n"
    done = installed.run("cartpulse", "--help")
    assert "detect" in done.stdout and "policy" in done.stdout


def test_the_installed_core_detects_abandonments_in_rees46_rows(installed: Installed) -> None:
    source = installed.cwd / "rees46.csv"
    source.write_text(REES46)
    done = installed.run("cartpulse", "detect", "--input", str(source), "--flush",
                         "--output", "-")  # fmt: skip
    found = [json.loads(line) for line in done.stdout.splitlines()]
    assert [(a["kind"], a["customer_id"]) for a in found] == [
        ("cart", "541312140"),
        ("browse", "550050854"),
    ]
    assert found[0]["cart"]["value"] == "35.79"
    assert "6 events, 0 invalid" in done.stderr


def test_the_installed_policy_and_templates_pass_the_strict_check(installed: Installed) -> None:
    store = Installed(
        installed.bin,
        installed.env | {"CARTPULSE_COUPON_SECRET": "c", "CARTPULSE_CLICK_SECRET": "k"},
        installed.cwd,
    )
    done = store.run("cartpulse", "policy", "check", "--strict")
    assert done.stdout.startswith("the shipped policy: valid; flows: ")
    assert "\ntrigger cart:\n  1. " in done.stdout  # the outline of the flows follows
    assert done.stderr == ""


def test_the_installed_templates_render_as_the_source_tree_does(
    installed: Installed, tmp_path: Path
) -> None:
    """An email in German (the MJML _layout, _labels.de) and an SMS in French (_opt_out.fr),
    previewed by the installed command and by the source tree's: the same files."""
    commands = tmp_path / "commands.jsonl"
    email = command("email", to="ann@example.com", locale="de", command_id="e" * 32)
    sms = command("sms", locale="fr", command_id="s" * 32)
    commands.write_bytes(email.to_json() + b"\n" + sms.to_json() + b"\n")
    outputs = {}
    for who in ("wheel", "tree"):
        out = tmp_path / who
        args = ["preview", "--commands", str(commands), "--output", str(out)]
        if who == "wheel":
            done = installed.run("cartpulse", *args)
        else:
            done = _run([sys.executable, "-m", "streams.cli", *args], env=installed.env, cwd=ROOT)
        assert "1 emails and 1 SMS rendered" in done.stdout
        # each run draws its own MIME boundaries
        outputs[who] = {f.name: BOUNDARY.sub(b"=boundary=", f.read_bytes()) for f in out.iterdir()}
    assert outputs["wheel"] == outputs["tree"]
    (sms_text,) = (v for k, v in outputs["wheel"].items() if k.endswith(".sms.txt"))
    assert sms_text.decode().endswith("Répondez STOP pour vous désabonner.\n")
