import contextlib, io, os, shutil, types
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = shutil.which('chromium') or ('/usr/bin/chromium' if Path('/usr/bin/chromium').exists() else None)
IN_CI = os.environ.get('CI', '').lower() in ('1', 'true', 'yes')


def need_chromium():
    "Skip browser tests when no chromium is installed, except in CI, where a missing browser is a failure."
    if CHROMIUM: return CHROMIUM
    if IN_CI: pytest.fail("CI=true but Debian's chromium is not installed: `make setup` installs it")
    pytest.skip("Debian's chromium is not installed (apt-get install chromium)")


@pytest.fixture(scope='session')
def browser():
    exe = need_chromium()
    from playwright.sync_api import sync_playwright
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=exe, args=['--no-sandbox', '--disable-gpu', '--disable-background-networking',
                                                         '--disable-component-update', '--disable-sync', '--no-first-run'])
        yield b
        b.close()


def cli(*args):
    "Run the `vaecausal` command in this process (same exit code and stderr as the console script, without a new Python)."
    from vaecausal_nb.cli import main
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try: rc = main([str(a) for a in args])
        except SystemExit as e: rc = e.code                  # argparse's own errors
    return types.SimpleNamespace(returncode=rc, stdout=out.getvalue(), stderr=err.getvalue())
