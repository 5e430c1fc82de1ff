"""The study runner: killed at any moment, a rerun does only what is missing and ends with identical results; the Ray
backend gives the same numbers as the local one; a full disk is one clear error and loses nothing."""
import errno, json, os, signal, subprocess, sys, time
from pathlib import Path
from unittest import mock

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
VAECAUSAL = [str(Path(sys.executable).parent / 'vaecausal')]
TINY = {'name': 'tiny', 'archs': ['vae', 'vq_vae'], 'steps': 40, 'batch_size': 16, 'probe_steps': 30,
        'causal_images': 16, 'modularity_images': 2, 'metrics': ['mig', 'sap', 'factor_vae', 'irs'],   # DCI: the cost
        'metric_sizes': {'dci': [200, 100], 'mig': 300, 'sap': [200, 100], 'factor_vae': [20, 10, 200],
                         'beta_vae': [10, 10], 'irs': 300}}
ENV = {**os.environ, 'PYTHONHASHSEED': '0', 'OMP_NUM_THREADS': '1'}


def study(spec_file, out, **kw):
    return subprocess.run(VAECAUSAL + ['study', '--spec', str(spec_file), '--out', str(out), '--no-progress'],
                          capture_output=True, text=True, cwd=ROOT, env=ENV, **kw)


def metrics(root):
    out = {}
    for p in sorted((Path(root) / 'runs').glob('*/metrics.json')):
        m = json.loads(p.read_text())
        out[p.parent.name] = {k: v for k, v in m.items() if not k.startswith('seconds')}
    return out


@pytest.fixture(scope='module')
def spec_file(tmp_path_factory):
    p = tmp_path_factory.mktemp('spec') / 'tiny.json'
    p.write_text(json.dumps(TINY))
    return p


@pytest.fixture(scope='module')
def reference(spec_file, tmp_path_factory):
    out = tmp_path_factory.mktemp('ref') / 'study'
    r = study(spec_file, out)
    assert r.returncode == 0, r.stderr
    return out


def test_uninterrupted_study_writes_everything(reference):
    m = metrics(reference)
    assert len(m) == 2
    assert (reference / 'report.md').exists() and (reference / 'results.csv').exists()
    for row in m.values():
        assert 0 <= row['mig'] <= 1 and 'dci_disentanglement' not in row and row['final_recon'] > 0


def test_kill_mid_study_then_rerun_completes_only_the_missing_runs(spec_file, reference, tmp_path):
    out = tmp_path / 'study'
    p = subprocess.Popen(VAECAUSAL + ['study', '--spec', str(spec_file), '--out', str(out), '--no-progress',
                                      '--workers', '1'], cwd=ROOT,    # one run after the other: the state below is met
                         env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.time() + 300
    def state():   # (finished runs, a later run has a checkpoint)
        runs = [d for d in (out / 'runs').glob('*') if d.is_dir()] if (out / 'runs').exists() else []
        fin = [d for d in runs if (d / 'metrics.json').exists()]
        return fin, [d for d in runs if d not in fin and (d / 'LATEST').exists()]
    while time.time() < deadline and p.poll() is None:
        fin, ckpt = state()
        if fin and ckpt: break
        time.sleep(0.05)
    os.killpg(p.pid, signal.SIGKILL); p.wait()          # the runner and its worker processes, with no chance to clean up
    fin, ckpt = state()
    assert fin and ckpt and len(fin) < 2, 'the study finished (or never checkpointed) before it could be killed'
    first = {d.name: (d / 'metrics.json').stat().st_mtime_ns for d in fin}
    r = study(spec_file, out)
    assert r.returncode == 0, r.stderr
    assert f'{len(fin)} already finished, {2 - len(fin)} to do' in r.stderr
    assert {d: (out / 'runs' / d / 'metrics.json').stat().st_mtime_ns for d in first} == first   # not redone
    assert metrics(out) == metrics(reference)                                                   # identical numbers
    assert not list(out.rglob('*.tmp'))


def test_full_disk_is_one_clear_error_and_loses_nothing(spec_file, reference, tmp_path):
    import shutil
    from vaecausal_nb.core import VaeCausalError
    from vaecausal_nb.study import StudySpec, run_study
    out = tmp_path / 'study'
    shutil.copytree(reference, out)
    victim = sorted(d for d in (out / 'runs').glob('*') if d.is_dir())[0]
    (victim / 'metrics.json').unlink()                     # one run to measure again
    def full(fd): raise OSError(errno.ENOSPC, 'No space left on device')
    torch.set_num_threads(1)
    with mock.patch('os.fsync', full), pytest.raises(VaeCausalError) as e:
        run_study(StudySpec.from_dict(TINY), out, workers=1, progress=False)   # in this process, where fsync is patched
    msg = str(e.value)
    assert '1 of 1 runs failed' in msg and 'No space left on device' in msg and victim.name in msg
    assert not (victim / 'metrics.json').exists() and not list(out.rglob('.*.tmp'))
    assert len(metrics(out)) == 1                          # the other run is untouched
    run_study(StudySpec.from_dict(TINY), out, workers=1, progress=False)   # space again: completes
    assert metrics(out) == metrics(reference)


def test_bad_input(tmp_path, spec_file):
    r = subprocess.run(VAECAUSAL + ['study', '--preset', 'nope'], capture_output=True, text=True, cwd=ROOT, env=ENV)
    assert r.returncode == 2 and "unknown preset 'nope'" in r.stderr
    r = subprocess.run(VAECAUSAL + ['study', '--spec', str(spec_file), '--archs', 'vae,wae', '--out', str(tmp_path / 'a')],
                       capture_output=True, text=True, cwd=ROOT, env=ENV)
    assert r.returncode == 2 and "unknown architecture(s) 'wae'" in r.stderr
    (tmp_path / 'old').mkdir(); (tmp_path / 'old' / 'study.json').write_text('{"version": 0, "specs": []}')
    r = study(spec_file, tmp_path / 'old')
    assert r.returncode == 2 and 'spec version 0' in r.stderr
    r = subprocess.run(VAECAUSAL + ['study', '--preset', 'paper', '--datasets', 'dsprites', '--out', str(tmp_path / 'p')],
                       capture_output=True, text=True, cwd=ROOT, env={**ENV, 'VAECAUSAL_DATA': str(tmp_path / 'nodata')})
    assert r.returncode == 2 and '--allow-procedural' in r.stderr


def test_measure_command_measures_a_run(reference, tmp_path):
    import shutil
    run = tmp_path / 'run'
    shutil.copytree(sorted((reference / 'runs').glob('vae-*'))[0], run)
    r = subprocess.run(VAECAUSAL + ['measure', str(run), '--sizes', json.dumps(TINY['metric_sizes']), '--probe-steps', '30', '--causal-images', '8',
                                    '--modularity-images', '2', '--no-progress'],
                       capture_output=True, text=True, cwd=ROOT, env={**ENV, 'VAECAUSAL_ZOO': str(tmp_path / 'zoo')})
    assert r.returncode == 0, r.stderr
    m = json.loads(next(run.glob('measurement-custom-*.json')).read_text())['numbers']
    assert 0 <= m['mig'] <= 1 and m['n_latents'] == 10 and 'ces' in m


def test_ray_backend_matches_local(spec_file, reference, tmp_path):
    if os.environ.get('CI') != 'true': pytest.importorskip('ray')
    from vaecausal_nb.study import StudySpec, run_study
    spec = StudySpec.from_dict(TINY)
    torch.set_num_threads(1)
    df = run_study(spec, tmp_path / 'ray', backend='ray', progress=False)
    assert len(df) == 2
    ref = metrics(reference)
    assert {k: v for k, v in metrics(tmp_path / 'ray').items()} == {k: ref[k] for k in metrics(tmp_path / 'ray')}
