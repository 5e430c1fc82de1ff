"""A study and its report in a folder the user already has (issue #29): they never overwrite a file vaecausal_nb did not
write, and update their own output in place; bad study roots and spec files get one clear error (exit 2, one line);
no time means nothing starts; a run's weights do not depend on --workers."""
import json
import os
from pathlib import Path
from unittest import mock

import pytest
import torch
from safetensors.torch import load_file

from conftest import cli  # the `vaecausal` command run in this process
from vaecausal_nb.core import VaeCausalError, save_json
from vaecausal_nb.report import write_report
from vaecausal_nb.study import StudySpec, run_study

SIZES = {'dci': [80, 80], 'mig': 80, 'sap': [80, 80], 'factor_vae': [10, 10, 100], 'beta_vae': [10, 10], 'irs': 80}
TINY = {'name': 'safety', 'archs': ['vae'], 'seeds': [0, 1], 'steps': 12, 'batch_size': 8, 'probe_steps': 5,
        'causal_images': 8, 'modularity_images': 2, 'metric_sizes': SIZES, 'metrics': ['mig', 'sap', 'factor_vae', 'irs']}


def one_line_error(r, msg):
    assert r.returncode == 2, (r.returncode, r.stderr[-2000:])
    assert msg in r.stderr and r.stderr.strip().count('\n') == 0 and 'Traceback' not in r.stderr, r.stderr


def snapshot(folder):
    "Every file under `folder` with its bytes."
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(Path(folder).rglob('*')) if p.is_file()}


def spec_file(tmp_path, **over):
    p = tmp_path / f'spec{len(list(tmp_path.glob("spec*.json")))}.json'
    p.write_text(json.dumps({**TINY, **over}))
    return p


def synthetic_root(root, n=4):
    "A study root with runs/*/metrics.json of made-up numbers (no models): enough for a report."
    for s in range(n):
        name = f'vae-dsprites-L10-s{s}-synthetic'
        save_json({'key': name, 'name': name, 'arch': 'vae', 'dataset': 'dsprites', 'procedural': True,
                   'n_factors': 5, 'latent_dim': 10, 'seed': s, 'steps': 100, 'hparams': '{}', 'seconds_train': 1.0,
                   'seconds_eval': 1.0, 'variant': 'standard', 'final_recon': 50.0 + s, 'final_kl': 3.0,
                   'final_loss': 53.0 + s, 'n_active': 3.0, 'dci_disentanglement': 0.1 * s, 'mig': 0.05 * s,
                   'ces': 0.01 * (s + 1), 'specificity_pixel': 0.3, 'specificity_factor': 0.5,
                   'modularity': 0.2}, root / 'runs' / name / 'metrics.json')
    return root


def test_study_out_refuses_the_users_report_and_results(tmp_path):
    mine = tmp_path / 'mypaper'; mine.mkdir()
    (mine / 'report.md').write_text('# My paper\n'); (mine / 'results.csv').write_text('a,b\n1,2\n')
    before = snapshot(mine)
    r = cli('study', '--spec', spec_file(tmp_path), '--out', mine, '--no-progress')
    one_line_error(r, f'{mine} holds report.md, results.csv, which vaecausal_nb did not write there (or which changed '
                      "since it did); the study's report (written at the end; --no-report skips it) would overwrite "
                      'them: move them away, or give --out a new folder')
    assert snapshot(mine) == before                     # byte for byte, and nothing trained or written beside them


def test_report_out_refuses_the_users_files_and_updates_its_own(tmp_path):
    root = synthetic_root(tmp_path / 'root')
    figs = tmp_path / 'myfigs'; (figs / 'figures').mkdir(parents=True)
    (figs / 'report.md').write_text('mine'); (figs / 'figures' / 'architectures.png').write_bytes(b'\x89PNG mine')
    before = snapshot(figs)
    one_line_error(cli('report', root, '--out', figs), f'{figs} holds report.md, figures/architectures.png, which '
                   'vaecausal_nb did not write there')
    assert snapshot(figs) == before
    for out in (tmp_path / 'fresh', root):              # its own output, written twice: updated in place
        for _ in range(2): assert cli('report', root, '--out', out).returncode == 0
        assert (out / 'report.md').read_text().startswith('# Study report')
    (root / 'report.md').write_text('edited by hand')   # changed since it was written: the user's now
    one_line_error(cli('report', root), f'{root} holds report.md, which vaecausal_nb did not write there (or which '
                   'changed since it did)')
    assert (root / 'report.md').read_text() == 'edited by hand'


@pytest.mark.parametrize('row, why', [({}, 'no key, name, arch, dataset'), ([1, 2], 'a JSON list, not an object'),
                                      ('mig', 'mig is "high", not a number'), ('arch', 'no arch'),
                                      ('huge', 'mig is 1e+308, outside the 0–1 that metric takes'),
                                      ('negative', 'dci_disentanglement is -5, outside the 0–1 that metric takes')])
def test_report_of_a_bad_metrics_file_is_one_line(tmp_path, row, why):
    root = synthetic_root(tmp_path / 'root', n=2)
    f = next((root / 'runs').glob('*/metrics.json'))
    good = json.loads(f.read_text())
    if row == 'mig': row = {**good, 'mig': 'high'}
    if row == 'arch': row = {k: v for k, v in good.items() if k != 'arch'}
    if row == 'huge': row = {**good, 'mig': 1e308}
    if row == 'negative': row = {**good, 'dci_disentanglement': -5}
    save_json(row, f)
    one_line_error(cli('report', root), f"{f} does not hold a run's results ({why}")
    assert not (root / 'report.md').exists() and not (root / 'figures').exists()


def test_report_out_that_cannot_take_a_report(tmp_path):
    root = synthetic_root(tmp_path / 'root', n=2)
    (tmp_path / 'afile').write_text('x')
    one_line_error(cli('report', root, '--out', tmp_path / 'afile'), f'{tmp_path / "afile"} is a file; the report '
                   'is a folder of files: give --out a folder')
    ro = tmp_path / 'ro'; ro.mkdir()
    if os.geteuid() != 0:                               # a real read-only folder
        ro.chmod(0o555)
        try: r = cli('report', root, '--out', ro)
        finally: ro.chmod(0o755)
    else:                                               # root writes anywhere: the access check is what refuses
        access = os.access
        with mock.patch('os.access', lambda p, m, *a, **k: False if Path(p) == ro else access(p, m, *a, **k)):
            r = cli('report', root, '--out', ro)
    one_line_error(r, f'{ro} is not writable; give --out a folder you can write to')
    assert list(ro.iterdir()) == []


@pytest.mark.parametrize('content', [[1, 2], {'version': 1, 'specs': 'abc'}])
def test_a_study_json_that_is_not_a_study_file(tmp_path, content):
    root = synthetic_root(tmp_path / 'root', n=2)
    save_json(content, root / 'study.json')
    before = snapshot(root)
    msg = f'{root / "study.json"} is not a study file'
    one_line_error(cli('study', '--spec', spec_file(tmp_path), '--out', root, '--no-progress', '--no-report'), msg)
    one_line_error(cli('report', root), msg)
    assert snapshot(root) == before
    with pytest.raises(VaeCausalError, match='is not a study file'): write_report(root)


@pytest.mark.parametrize('over, msg', [
    ({'archs': 'vae'}, 'archs must be a list, like "archs": ["vae", "beta_vae"], got "vae"'),
    ({'seeds': 3}, 'seeds must be a list, like "seeds": [0, 1], got 3'),
    ({'metric_sizes': {**SIZES, 'dci': [100, 50]}, 'metrics': ['dci', 'mig', 'sap', 'irs']},   # (DCI measured: checked)
     'metric_sizes dci [100, 50]: too few points for dsprites; '
     'DCI (train and test), SAP (train and test), MIG, IRS')])
def test_spec_files_checked_before_anything_is_written(tmp_path, over, msg):
    out = tmp_path / 'study'
    one_line_error(cli('study', '--spec', spec_file(tmp_path, **over), '--out', out, '--no-progress'), msg)
    assert not out.exists()
    with pytest.raises(VaeCausalError, match='must be a list|too few points'):
        run_study(StudySpec(**{**TINY, **over}), out, progress=False)
    assert not out.exists()


def test_metric_sizes_message_gives_the_rule(tmp_path):
    r = cli('study', '--spec', spec_file(tmp_path, metric_sizes={'dci': [100, 50]}, metrics=['dci']), '--out', tmp_path / 's')
    one_line_error(r, 'need at least 80 points in each set (twice the 40 classes of its largest factor, and at least 20)')


@pytest.mark.parametrize('argv', [['study', '--preset', 'quick', '--out', ''], ['train', '--procedural', '--out', ''],
                                  ['report', 'somewhere', '--out', '']])
def test_empty_out_is_one_clear_error(tmp_path, argv):
    one_line_error(cli(*argv), '--out is an empty path; give it a folder')


def test_no_time_starts_nothing_not_even_the_probe(tmp_path):
    out = tmp_path / 'study'
    r = cli('study', '--spec', spec_file(tmp_path), '--out', out, '--no-progress', '--time-limit', '0')
    assert r.returncode == 3, r.stderr
    assert sorted(p.name for p in out.iterdir()) == ['.vaecausal_files.json', 'study.json']   # no probes/, no runs/


def test_workers_do_not_change_a_run_and_a_rerun_updates_its_own_output(tmp_path):
    spec = spec_file(tmp_path)
    one, two = tmp_path / 'one', tmp_path / 'two'
    threads = torch.get_num_threads()
    torch.set_num_threads(2)          # this process's count (what --workers 1 trained with before the spec pinned it)
    try:
        for out, w in ((one, '1'), (two, '2')):
            r = cli('study', '--spec', spec, '--out', out, '--workers', w, '--no-progress')
            assert r.returncode == 0, r.stderr
        assert torch.get_num_threads() == 2                                  # given back after the study
    finally: torch.set_num_threads(threads)
    names = sorted(p.name for p in (one / 'runs').iterdir() if p.is_dir())
    assert len(names) == 2 and names == sorted(p.name for p in (two / 'runs').iterdir() if p.is_dir())
    for n in names:                                     # the same run key: the same weights, bit for bit
        a, b = load_file(str(one / 'runs' / n / 'model.safetensors')), load_file(str(two / 'runs' / n / 'model.safetensors'))
        assert a.keys() == b.keys() and all((a[k] == b[k]).all() for k in a), n
        ra, rb = (json.loads((o / 'runs' / n / 'metrics.json').read_text()) for o in (one, two))
        assert ra['threads'] == rb['threads'] == 1
        assert {k: v for k, v in ra.items() if not k.startswith('seconds')} == \
               {k: v for k, v in rb.items() if not k.startswith('seconds')}
    done = {p: p.stat().st_mtime_ns for p in (one / 'runs').glob('*/metrics.json')}
    report = (one / 'report.md').read_bytes()
    r = cli('study', '--spec', spec, '--out', one, '--workers', '1', '--no-progress')   # again, over its own output
    assert r.returncode == 0, r.stderr
    assert {p: p.stat().st_mtime_ns for p in done} == done                  # nothing trained or measured again
    assert (one / 'report.md').read_bytes().startswith(b'# Study report') and report.startswith(b'# Study report')


def test_a_study_json_does_not_make_the_users_files_ours(tmp_path):
    "A folder holding a copy of study.json (no record of vaecausal_nb's files) still keeps the user's report."
    root = synthetic_root(tmp_path / 'root')
    assert cli('report', root).returncode == 0                     # the root's study.json-less report: recorded
    mine = tmp_path / 'mp3'; mine.mkdir()
    (mine / 'report.md').write_text('# my paper\n'); (mine / 'results.csv').write_text('a,b\n')
    save_json({'version': 1, 'specs': []}, mine / 'study.json')
    before = snapshot(mine)
    one_line_error(cli('report', root, '--out', mine), f'{mine} holds report.md, results.csv, which vaecausal_nb did '
                   'not write there')
    assert snapshot(mine) == before


def test_measure_refuses_the_users_file_of_that_name(tmp_path):
    from vaecausal_nb.measure import measurement_path, measurement_settings
    from vaecausal_nb.train import load_run
    run = tmp_path / 'run9'
    assert cli('train', '--arch', 'vae', '--procedural', '--steps', '2', '--batch-size', '8', '--device', 'cpu',
               '--out', run).returncode == 0
    name = measurement_path(run, measurement_settings('quick'), load_run(run).config.key()).name
    (run / name).write_text('{"my": "notes"}')
    before = snapshot(run)
    one_line_error(cli('measure', run), f'{run} holds {name}, which vaecausal_nb did not write there')
    assert snapshot(run) == before                                  # refused before the probe or any metric ran


def test_study_imports_the_runs_of_another_machine(tmp_path):
    "A report's results.csv finishes the same spec in another root without training; another spec's is refused."
    spec, gpu, laptop = spec_file(tmp_path, seeds=[0]), tmp_path / 'gpu', tmp_path / 'laptop'
    assert cli('study', '--spec', spec, '--out', gpu, '--workers', '1', '--no-progress').returncode == 0
    shared = gpu / 'results.csv'
    r = cli('study', '--spec', spec, '--out', laptop, '--import', shared, '--workers', '1', '--no-progress')
    assert r.returncode == 0, r.stderr[-2000:]
    [run] = (laptop / 'runs').iterdir()
    assert sorted(p.name for p in run.iterdir()) == ['metrics.json']          # imported, not trained again
    assert json.loads((run / 'metrics.json').read_text())['imported_from'] == str(shared.resolve())
    assert 'Measured on:' in (laptop / 'report.md').read_text()
    other = tmp_path / 'other'
    r = cli('study', '--spec', spec_file(tmp_path, seeds=[0], steps=13), '--out', other, '--import', shared,
            '--workers', '1', '--no-progress')
    one_line_error(r, "is not a run of this study's spec")
    assert not other.exists()                                                 # nothing written
