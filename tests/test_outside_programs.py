"""No test module starts an outside program (redis-server, chromium, mount, ...) except through
tests/helpers/programs.py, so that where one is missing its tests skip naming what to install
instead of failing (a fresh clone's `make test` once ended in two errors for want of redis-server).

The check reads each test module's syntax tree: a program of helpers.programs.KNOWN named where a
program is started (the first word of an argv list, an argument of `shutil.which`, `subprocess.*`,
`os.exec*`, `os.system`) or given by a fixed path ("/usr/bin/redis-server") is a finding; the
same name as the argument of `require_program` or `find_program` is the guard.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from helpers.programs import ALIASES, KNOWN, find_program, require_program, skip_message

TESTS = Path(__file__).resolve().parent
PROGRAMS = set(KNOWN) | {alias for names in ALIASES.values() for alias in names}
GUARDS = {"require_program", "find_program"}
# Calls that find or start a program: shutil.which, subprocess.{run,Popen,call,check_call,check_output},
# os.{system,popen,exec*,spawn*,posix_spawn*}, asyncio.create_subprocess_{exec,shell}.
LAUNCHERS = {
    "which",
    "run",
    "Popen",
    "call",
    "check_call",
    "check_output",
    "system",
    "popen",
    "create_subprocess_exec",
    "create_subprocess_shell",
}
LAUNCHER_PREFIXES = ("exec", "spawn", "posix_spawn")


def called_name(call: ast.Call) -> str:
    func = call.func
    return func.attr if isinstance(func, ast.Attribute) else func.id if isinstance(func, ast.Name) else ""


def names_program(value: str, command_line: bool) -> str | None:
    """The known program a string names: as a bare name or a path, or (`command_line`, a string
    given to a launcher, which may be a shell command) as its first word."""
    words = value.split() if command_line else [value]
    name = words[0].rsplit("/", 1)[-1] if words else ""
    return name if name in PROGRAMS else None


def findings(source: str, filename: str = "<test>") -> list[str]:
    """Where the module names a known program outside a guard: 'line N: name'."""
    tree = ast.parse(source, filename)
    guarded, launcher_args, argv_heads = set(), set(), set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and called_name(node) in GUARDS and node.args:
            guarded.add(id(node.args[0]))
        elif isinstance(node, ast.Call):
            name = called_name(node)
            if name in LAUNCHERS or name.startswith(LAUNCHER_PREFIXES):
                launcher_args |= {id(arg) for arg in node.args}
        elif isinstance(node, (ast.List, ast.Tuple)) and node.elts:
            argv_heads.add(id(node.elts[0]))
    found = []
    for node in ast.walk(tree):
        if not (isinstance(node, ast.Constant) and isinstance(node.value, str)) or id(node) in guarded:
            continue
        program = names_program(node.value, command_line=id(node) in launcher_args)
        if program is None:
            continue
        if node.value.startswith("/") or id(node) in launcher_args or id(node) in argv_heads:
            found.append(f"line {node.lineno}: {program}")
    return found


def test_no_test_module_starts_an_outside_program_unguarded():
    report = {}
    for path in sorted(TESTS.rglob("*.py")):
        if path == TESTS / "helpers" / "programs.py":
            continue
        found = findings(path.read_text(), str(path))
        if found:
            report[str(path.relative_to(TESTS.parent))] = found
    assert not report, f"start these through helpers.programs.require_program / find_program: {report}"


@pytest.mark.parametrize(
    "source",
    [
        'REDIS_SERVER = shutil.which("redis-server") or "/usr/bin/redis-server"',
        'CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")',
        'subprocess.run(["mount", "-t", "tmpfs", "tmpfs", folder], capture_output=True)',
        'proc = subprocess.Popen(("redis-server", "--port", port))',
        'os.system("ip netns add test")',
        'os.execvp("chromedriver", ["chromedriver"])',
    ],
)
def test_the_check_finds_an_unguarded_start(source):
    assert findings(source)


@pytest.mark.parametrize(
    "source",
    [
        'REDIS_SERVER = require_program("redis-server")',
        'mount = find_program("mount")\nsubprocess.run([mount, "-t", "tmpfs", "tmpfs", folder])',
        'pytest.fail("redis-server did not answer")',  # a message, not a start
        'row = {"ip": "10.0.0.1", "names": ["mount point", "x"]}',
    ],
)
def test_the_check_leaves_guarded_starts_and_mere_mentions(source):
    assert findings(source) == []


def test_a_hidden_program_is_missing_and_skips_naming_the_package(monkeypatch):
    assert find_program("sh") is not None
    monkeypatch.setenv("CRAWL2GPT_TEST_HIDE", "redis-server, sh")
    assert find_program("sh") is None
    with pytest.raises(pytest.skip.Exception, match="^needs redis-server: apt-get install redis-server$"):
        require_program("redis-server")
    with pytest.raises(pytest.skip.Exception, match="^needs chromium: apt-get install chromium$"):
        monkeypatch.setenv("CRAWL2GPT_TEST_HIDE", "chromium")
        require_program("chromium")
    assert skip_message("chromedriver", KNOWN["chromedriver"]) == "needs chromedriver: apt-get install chromium-driver"
