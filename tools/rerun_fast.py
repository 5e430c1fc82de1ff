"""Re-run the cells of a notebook that the default test run executes (not `#| slow`, `#| cuda`, `#| eval: false`)
and store their outputs; slow cells keep the outputs they have (`make slow` regenerates those). Then nbdev_clean.

    python tools/rerun_fast.py nbs/04_train.ipynb [more notebooks]
"""
import os, subprocess, sys
from pathlib import Path

from execnb.nbio import read_nb, write_nb
from execnb.shell import CaptureShell
from fastcore.xtras import working_directory
from nbdev.process import NBProcessor
from nbdev.frontmatter import FrontmatterProc

SKIP = {'slow', 'cuda'}


def skipped(cell) -> bool:
    if cell.cell_type != 'code' or 'nbdev_export(' in cell.source: return True
    direc = getattr(cell, 'directives_', {}) or {}
    return direc.get('eval:', [''])[0].lower() == 'false' or bool(SKIP & direc.keys())


def rerun(fn: Path):
    nb = NBProcessor(fn, procs=FrontmatterProc, process=True).nb       # directives parsed (directives_)
    skip = {i for i, c in enumerate(nb.cells) if skipped(c)}
    raw = read_nb(fn)                                                    # written back with the cells' own sources
    sh, os.environ['IN_TEST'] = CaptureShell(fn), '1'
    with working_directory(fn.parent):
        for i, cell in enumerate(raw.cells):
            if i in skip: continue
            cell.outputs = []                                            # a cell that now prints nothing shows nothing
            sh.cell(cell)
            if sh.exc: raise SystemExit(f'{fn}: cell {i} failed: {sh.exc!r}')
    write_nb(raw, fn)


if __name__ == '__main__':
    for f in sys.argv[1:]:
        rerun(Path(f).resolve())
        subprocess.run([str(Path(sys.executable).parent / 'nbdev_clean'), '--fname', f], check=True)
        print(f'{f}: fast cells re-run, outputs stored')
