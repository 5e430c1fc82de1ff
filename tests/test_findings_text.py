"""The README's findings summary says what the findings notebooks say (issue #30 item 5).

Each notebook in nbs/findings/ that tests a claim of the intervention paper is titled `# Finding (i): ...` and
carries one markdown paragraph `**Verdict (pilot):** <verdict> — ...`. The README's section "What the findings say"
has one bullet `- **(i) ...** — <verdict>: ...` per finding. These tests check that
* every finding has a verdict paragraph, and the README's bullet states the same verdict;
* the verdict paragraph names the verdict its notebook's code printed (`VERDICT ...: <verdict>` in the stored outputs);
* every decimal number the README's bullet quotes is, to the digits quoted, a number in that notebook's stored outputs;
* the same for the README's paragraph on the instrument ("What the instrument itself measures ...") and
  findings/05_instrument.
"""
import json
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
VERDICTS = ('not reproduced', 'not tested', 'reproduced', 'inconclusive')    # longest first: 'not reproduced' wins
_VERDICT = '|'.join(VERDICTS)
_NUMBER = re.compile(r'(?<![\w.])([-−+]?)(\d+\.\d+)')


def _numbers(text):
    "The decimal numbers of `text` as (value, decimals), with a '−' or '-' sign kept."
    return [(float(v) * (-1 if s in '-−' and s else 1), len(v.split('.')[1])) for s, v in _NUMBER.findall(text)]


def _verdict(text):
    "The verdict `text` starts with (after spaces and markup), or None."
    m = re.match(rf'[\s*_]*({_VERDICT})\b', text)
    return m.group(1) if m else None


def readme_findings(readme):
    "{'i': text after the dash, ...} from the bullets of the README's section 'What the findings say'."
    m = re.search(r'^## What the findings say\n(.*?)(?=^## |\Z)', readme, re.S | re.M)
    assert m, "README.md has no section '## What the findings say'"
    bullets = re.findall(r'^- \*\*\((i|ii|iii|iv|v|vi)\)[^*]*\*\* — (.*?)(?=^- |^\S|\Z)', m.group(1), re.S | re.M)
    return {k: ' '.join(v.split()) for k, v in bullets}


def notebook_finding(path):
    "(finding number, the markdown's verdict paragraphs, stored outputs' text) of one findings notebook."
    nb = json.loads(Path(path).read_text(encoding='utf-8'))
    md = [''.join(c['source']) for c in nb['cells'] if c['cell_type'] == 'markdown']
    m = re.match(r'# Finding \((\w+)\)', md[0]) if md else None
    lines = [' '.join(par.split()) for s in md for par in re.split(r'\n\s*\n', s)
             if par.startswith('**Verdict (pilot):**')]
    outs = []
    for c in nb['cells']:
        for o in c.get('outputs', []):
            t = o.get('text') or o.get('data', {}).get('text/plain') or ''
            outs.append(''.join(t) if isinstance(t, list) else t)
    return (m.group(1) if m else None), lines, '\n'.join(outs)


def problems(root=ROOT):
    "Every disagreement between README.md and the findings notebooks under `root` (empty when they agree)."
    root = Path(root)
    out = []
    readme = readme_findings((root / 'README.md').read_text(encoding='utf-8'))
    nbs = {}
    for p in sorted((root / 'nbs' / 'findings').glob('*.ipynb')):
        k, lines, outputs = notebook_finding(p)
        if k: nbs[k] = (p.name, lines, outputs)
    if not nbs: out.append('no notebook in nbs/findings is titled "# Finding (...)"')
    if sorted(readme) != sorted(nbs):
        out.append(f'README summarises findings {sorted(readme)}, the notebooks are findings {sorted(nbs)}')
    for k, (name, lines, outputs) in nbs.items():
        if len(lines) != 1:
            out.append(f'{name}: {len(lines)} paragraphs start with **Verdict (pilot):**, expected 1'); continue
        line = lines[0][len('**Verdict (pilot):**'):]
        nv = _verdict(line)
        if nv is None: out.append(f'{name}: its verdict line does not start with one of {VERDICTS}: {line!r}')
        printed = set(re.findall(rf'VERDICT(?: \([^)\n]*\))?:\s*({_VERDICT})', outputs))
        if not printed: out.append(f'{name}: no stored output prints a VERDICT')
        for v in printed:
            if not re.search(rf'(?<!not )\b{v}\b' if v == 'reproduced' else rf'\b{v}\b', line):
                out.append(f'{name}: the code printed VERDICT {v!r}, its verdict line does not name it: {line!r}')
        if k not in readme: continue
        rv = _verdict(readme[k])
        if rv != nv: out.append(f'finding ({k}): README says {rv!r}, {name} says {nv!r}')
        stored = _numbers(outputs)
        for x, d in _numbers(readme[k]):
            if not any(abs(y - x) <= 0.5 * 10 ** -d + 1e-9 for y, _ in stored):
                out.append(f'finding ({k}): README quotes {x:.{d}f}, which no stored output of {name} rounds to')
    return out


def _unmatched(text, outputs):
    "The decimal numbers of `text` that no number of `outputs` rounds to, to the digits quoted."
    stored = _numbers(outputs)
    return [f'{x:.{d}f}' for x, d in _numbers(text) if not any(abs(y - x) <= 0.5 * 10 ** -d + 1e-9 for y, _ in stored)]


def instrument_problems(root=ROOT):
    "The numbers of the README's instrument paragraph that findings/05_instrument's stored outputs do not have."
    readme = (Path(root) / 'README.md').read_text(encoding='utf-8')
    m = re.search(r'^What the instrument itself measures.*?(?=\n\n)', readme, re.S | re.M)
    if not m: return ["README.md has no paragraph 'What the instrument itself measures'"]
    _, _, outputs = notebook_finding(Path(root) / 'nbs' / 'findings' / '05_instrument.ipynb')
    return [f'README quotes {x}, which no stored output of 05_instrument rounds to'
            for x in _unmatched(m.group(0), outputs)]


def test_readme_findings_match_notebooks():
    assert problems() == []


def test_readme_instrument_matches_its_notebook(tmp_path):
    assert instrument_problems() == []
    text = (ROOT / 'README.md').read_text(encoding='utf-8')
    (tmp_path / 'nbs').mkdir()
    (tmp_path / 'nbs' / 'findings').symlink_to(ROOT / 'nbs' / 'findings')
    start = text.index('What the instrument itself measures')
    number = _NUMBER.search(text, start)
    (tmp_path / 'README.md').write_text(text[:number.start(2)] + str(float(number.group(2)) + 1.11)
                                        + text[number.end(2):], encoding='utf-8')
    assert instrument_problems(tmp_path)                  # a changed number is caught
    assert len(_numbers(text[start:text.index('\n\n', start)])) >= 8


def test_the_parsers_read_this_repository():
    "The check is not empty: four findings, each with a verdict and with numbers the README quotes."
    readme = readme_findings((ROOT / 'README.md').read_text(encoding='utf-8'))
    assert sorted(readme) == ['i', 'ii', 'iii', 'iv']
    assert all(_verdict(t) for t in readme.values())
    assert sum(len(_numbers(t)) for t in readme.values()) >= 20


@pytest.mark.parametrize('text, expected', [('not reproduced: x', 'not reproduced'), ('reproduced, x', 'reproduced'),
                                            ('**not tested** —', 'not tested'), ('maybe', None)])
def test_verdict_words(text, expected):
    assert _verdict(text) == expected


def test_numbers():
    assert _numbers('r = −0.51, g 3.85 and +0.09; CI 0.47–0.87; L = 10, v1.2') == [
        (-0.51, 2), (3.85, 2), (0.09, 2), (0.47, 2), (0.87, 2)]


def test_a_changed_readme_fails(tmp_path):
    "A copy of the README with one finding's verdict, or one quoted number, changed disagrees with the notebooks."
    (tmp_path / 'nbs').mkdir()
    (tmp_path / 'nbs' / 'findings').symlink_to(ROOT / 'nbs' / 'findings')
    text = (ROOT / 'README.md').read_text(encoding='utf-8')
    bullet = re.search(rf'^- \*\*\(i+v?\)[^*]*\*\* — ({_VERDICT})', text, re.M)
    other = next(v for v in VERDICTS if v != bullet.group(1))
    number = _NUMBER.search(text, bullet.end())
    changed = [text[:bullet.start(1)] + other + text[bullet.end(1):],
               text[:number.start(2)] + str(float(number.group(2)) + 1.11) + text[number.end(2):]]
    (tmp_path / 'README.md').write_text(text, encoding='utf-8')
    assert problems(tmp_path) == []
    for t in changed:
        (tmp_path / 'README.md').write_text(t, encoding='utf-8')
        assert problems(tmp_path)
