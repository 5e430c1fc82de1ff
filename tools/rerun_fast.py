"""Re-run the cells of a notebook that the default test run executes (not `#| slow`, `#| cuda`, `#| eval: false`)
and store their outputs; slow cells keep the outputs they have. Then nbdev_clean.

    python tools/rerun_fast.py nbs/04_train.ipynb [more notebooks]
    python tools/rerun_fast.py --slow nbs/*.ipynb nbs/findings/*.ipynb      # `make slow`

`--slow` runs the `#| slow` cells too (hours on 2 cores in all: the cached models of `train.pretrained`, the probes,
the pilot study), so anyone can regenerate the stored findings. It is resumable: a notebook that finished is noted
in `.rerun_slow.json` with a hash of its code, and skipped until its code changes; models and studies are cached or
resumed by the package itself. `#| cuda` cells need a GPU and always keep their outputs.
"""
import hashlib, json, os, subprocess, sys
from pathlib import Path

from execnb.nbio import read_nb, write_nb
from execnb.shell import CaptureShell
from fastcore.xtras import working_directory
from nbdev.process import NBProcessor
from nbdev.frontmatter import FrontmatterProc

DONE = Path(__file__).resolve().parents[1] / '.rerun_slow.json'    # notebooks --slow finished (git ignores it)


def skipped(cell, skip=frozenset({'slow', 'cuda'})) -> bool:
    if cell.cell_type != 'code' or 'nbdev_export(' in cell.source: return True
    direc = getattr(cell, 'directives_', {}) or {}
    return direc.get('eval:', [''])[0].lower() == 'false' or bool(skip & direc.keys())


def code_hash(fn: Path) -> str:
    "A hash of the notebook's code cells (what it runs), not of its outputs."
    nb = json.loads(fn.read_text())
    return hashlib.sha1(json.dumps([c['source'] for c in nb['cells'] if c['cell_type'] == 'code']).encode()).hexdigest()


def rerun(fn: Path, slow: bool = False):
    nb = NBProcessor(fn, procs=FrontmatterProc, process=True).nb       # directives parsed (directives_)
    skip = {i for i, c in enumerate(nb.cells) if skipped(c, frozenset({'cuda'} if slow else {'slow', 'cuda'}))}
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
    slow = '--slow' in sys.argv[1:]
    done = json.loads(DONE.read_text()) if slow and DONE.exists() else {}
    for f in [a for a in sys.argv[1:] if a != '--slow']:
        p = Path(f).resolve()
        if slow and done.get(str(p)) == code_hash(p):
            print(f'{f}: already re-run with its slow cells (its code is unchanged): skipped'); continue
        rerun(p, slow)
        subprocess.run([str(Path(sys.executable).parent / 'nbdev_clean'), '--fname', f], check=True)
        if slow:
            done[str(p)] = code_hash(p)
            DONE.write_text(json.dumps(done, indent=1))
        print(f'{f}: {"every cell but #| cuda" if slow else "fast cells"} re-run, outputs stored')
