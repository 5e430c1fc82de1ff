"""Seconds each code cell of the default test run takes (the cells `nbdev_test` runs: not `#| slow`, `#| cuda` or
`#| eval: false`), to see where `make test`'s time goes. One CSV row a cell: notebook, cell index, seconds, its first
line. Run from the repository root: python bench/notebook_times.py nbs/04a_fleet.ipynb ... > times.csv"""
import csv, os, sys, time
from pathlib import Path

from execnb.shell import CaptureShell
from fastcore.xtras import working_directory
from nbdev.process import NBProcessor
from nbdev.frontmatter import FrontmatterProc

SKIP = {'slow', 'cuda'}


def runs(cell) -> bool:
    if cell.cell_type != 'code' or 'nbdev_export(' in cell.source: return False
    direc = getattr(cell, 'directives_', {}) or {}
    return direc.get('eval:', [''])[0].lower() != 'false' and not (SKIP & direc.keys())


def times(fn: Path):
    nb = NBProcessor(fn, procs=FrontmatterProc, process=True).nb
    sh = CaptureShell(fn)
    os.environ['IN_TEST'] = '1'
    with working_directory(fn.parent):
        for i, cell in enumerate(nb.cells):
            if not runs(cell): continue
            t = time.perf_counter()
            sh.run_cell(cell.source)
            if sh.exc: raise RuntimeError(f'{fn} cell {i} failed: {sh.exc!r}')
            yield i, time.perf_counter() - t, cell.source.strip().splitlines()[0][:70]


if __name__ == '__main__':
    w = csv.writer(sys.stdout)
    w.writerow(['notebook', 'cell', 'seconds', 'first_line'])
    for f in sys.argv[1:]:
        for i, s, line in times(Path(f).resolve()):
            w.writerow([Path(f).name, i, f'{s:.2f}', line]); sys.stdout.flush()
