"""The notebook tests of `make test`: nbdev's `test_nb` on every notebook, as `nbdev_test` runs them, but the longest
first. `nbdev_test` starts notebooks in name order, so on 2 workers the longest one (10_study) started last and ran
alone for minutes with the other core idle. Here each notebook's seconds from the last recorded run
(`tools/nbtest_seconds.json`) decide the order (longest first; a notebook not listed there goes first, since its
time is unknown), which keeps both workers busy to the end. When the last notebook has run, the workers and what
they started are ended at once: `nbdev_test` (and fastcore's `parallel`) waited 2.5 minutes for the workers to exit
after the last notebook had ended, and the joblib pools a notebook had started outlived the run.

    python tools/nbtest.py [--n_workers 2] [--record]     # from the repository root

`--record` rewrites `tools/nbtest_seconds.json` with this run's seconds (commit it when the times have moved a lot).
The order changes only when the notebooks run, never what they test."""
import argparse, json, multiprocessing, os, sys, time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

from fastcore.xtras import working_directory
from nbdev.config import get_config
from nbdev.doclinks import nbglob
from nbdev.test import _keep_file, test_nb

TIMES = Path(__file__).with_name('nbtest_seconds.json')


def notebooks(order: dict) -> tuple[list[Path], callable]:
    "Every notebook nbdev_test would test, the longest (by `order`, seconds by path) first."
    cfg = get_config()
    files = [f.absolute() for f in sorted(nbglob(as_path=True)) if _keep_file(f, '.notest')]
    rel = lambda f: f.relative_to(cfg.nbs_path.absolute()).as_posix()
    return sorted(files, key=lambda f: -order.get(rel(f), float('inf'))), rel


def _timed(fn: Path, t0: float, **kw) -> tuple:
    "`test_nb`'s (passed, seconds), and when the notebook started and ended (seconds after `t0`) in which process."
    start = time.time() - t0
    ok, secs = test_nb(fn, **kw)
    return ok, secs, start, time.time() - t0, os.getpid()


def end_workers():
    """Kill this process's children and everything they started (the notebooks' joblib pools and their resource
    trackers, which would otherwise outlive the run by minutes, or keep a worker from exiting)."""
    import psutil
    me = psutil.Process()
    tree = me.children(recursive=True)
    for p in tree:
        try: p.kill()
        except psutil.NoSuchProcess: pass
    psutil.wait_procs(tree, timeout=10)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    ap.add_argument('--n_workers', type=int, default=2, help='notebooks run at once (default 2)')
    ap.add_argument('--record', action='store_true', help=f'write the seconds of this run to {TIMES.name}')
    a = ap.parse_args(argv)
    cfg = get_config()
    order = json.loads(TIMES.read_text()) if TIMES.exists() else {}
    files, rel = notebooks(order)
    print(f'{len(files)} notebooks, the longest first, on {a.n_workers} workers')
    t0 = time.time()
    with working_directory(cfg.nbs_path):
        sys.path.insert(0, str(Path(__file__).parent))
        from nbtest import _timed as timed           # by module name: the pool's workers unpickle it from there
        kw = dict(skip_flags=cfg.tst_flags.split(), force_flags=[], basepath=cfg.config_path, do_print=True)
        ex = ProcessPoolExecutor(a.n_workers, mp_context=multiprocessing.get_context('fork'))
        try:    # submitted longest first: each worker takes the next notebook when it is free
            futures = [ex.submit(timed, nb, t0, **kw) for nb in files]
            res = [fut.result() for fut in futures]
        finally:  # a worker's exit can wait minutes on what a notebook left behind (idle pools): end them now
            ex.shutdown(wait=False, cancel_futures=True)
            end_workers()
    seconds = {rel(f): round(r[1], 1) for f, r in zip(files, res)}
    print('notebook: seconds it ran (from its first cell), started and ended (s after the start), worker process')
    for f, (_, secs, start, end, pid) in sorted(zip(files, res), key=lambda o: o[1][2]):
        print(f'{rel(f)}: {secs:.0f} s, {start:.0f}-{end:.0f}, pid {pid}')
    print(f'notebook tests: {time.time() - t0:.0f} s wall')
    failed = [rel(f) for f, (ok, *_) in zip(files, res) if not ok]
    if failed:
        print('notebook tests failed:\n\t' + '\n\t'.join(failed), file=sys.stderr)
        return 1
    if a.record: TIMES.write_text(json.dumps(dict(sorted(seconds.items())), indent=1) + '\n')
    print('Success.')
    return 0


if __name__ == '__main__':
    os.environ.setdefault('OMP_NUM_THREADS', '1'); os.environ.setdefault('MKL_NUM_THREADS', '1')
    sys.exit(main())
