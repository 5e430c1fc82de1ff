"""The notebook tests of `make test`: nbdev's `test_nb` on every notebook, as `nbdev_test` runs them, but the longest
first. `nbdev_test` starts notebooks in name order, so on 2 workers the longest one (10_study) started last and ran
alone for minutes with the other core idle. Here each notebook's seconds from the last recorded run
(`tools/nbtest_seconds.json`) decide the order (longest first; a notebook not listed there goes first, since its
time is unknown), which keeps both workers busy to the end.

    python tools/nbtest.py [--n_workers 2] [--record]     # from the repository root

`--record` rewrites `tools/nbtest_seconds.json` with this run's seconds (commit it when the times have moved a lot).
The order changes only when the notebooks run, never what they test."""
import argparse, json, os, sys, time
from pathlib import Path

from fastcore.parallel import parallel
from fastcore.xtras import working_directory
from nbdev.config import get_config
from nbdev.doclinks import nbglob
from nbdev.test import _keep_file, test_nb

TIMES = Path(__file__).with_name('nbtest_seconds.json')


def notebooks(order: dict) -> list[Path]:
    "Every notebook nbdev_test would test, the longest (by `order`, seconds by path) first."
    cfg = get_config()
    files = [f.absolute() for f in sorted(nbglob(as_path=True)) if _keep_file(f, '.notest')]
    rel = lambda f: f.relative_to(cfg.nbs_path.absolute()).as_posix()
    return sorted(files, key=lambda f: -order.get(rel(f), float('inf'))), rel


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    p.add_argument('--n_workers', type=int, default=2, help='notebooks run at once (default 2)')
    p.add_argument('--record', action='store_true', help=f'write the seconds of this run to {TIMES.name}')
    a = p.parse_args(argv)
    cfg = get_config()
    order = json.loads(TIMES.read_text()) if TIMES.exists() else {}
    files, rel = notebooks(order)
    print(f'{len(files)} notebooks, the longest first, on {a.n_workers} workers')
    t0 = time.time()
    with working_directory(cfg.nbs_path):
        res = parallel(test_nb, files, skip_flags=cfg.tst_flags.split(), force_flags=[], n_workers=a.n_workers,
                       basepath=cfg.config_path, pause=0.01, do_print=True)
    seconds = {rel(f): round(t, 1) for f, (_, t) in zip(files, res)}
    for f, t in sorted(seconds.items(), key=lambda o: -o[1]): print(f'{f}: {t:.0f} s')
    print(f'notebook tests: {time.time() - t0:.0f} s wall')
    failed = [rel(f) for f, (ok, _) in zip(files, res) if not ok]
    if failed:
        print('notebook tests failed:\n\t' + '\n\t'.join(failed), file=sys.stderr)
        return 1
    if a.record: TIMES.write_text(json.dumps(dict(sorted(seconds.items())), indent=1) + '\n')
    print('Success.')
    return 0


if __name__ == '__main__':
    os.environ.setdefault('OMP_NUM_THREADS', '1'); os.environ.setdefault('MKL_NUM_THREADS', '1')
    sys.exit(main())
