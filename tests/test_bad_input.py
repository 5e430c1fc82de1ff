"""Inputs checked at the door: each bad input a user tried gets one clear error (a VaeCausalError, or exit 2 and one
line from the CLI) and writes nothing."""
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from torch import nn

from conftest import cli  # the `vaecausal` command run in this process
from vaecausal_nb.core import VaeCausalError, save_json
from vaecausal_nb.data import load_dataset
from vaecausal_nb.interventions import Intervention
from vaecausal_nb.measure import measurement_path, measurement_settings
from vaecausal_nb.models import build_model
from vaecausal_nb.probes import factor_probe
from vaecausal_nb.pruning import abstract, load_abstraction
from vaecausal_nb.train import TrainConfig, train

ROOT = Path(__file__).resolve().parents[1]
VAECAUSAL = [str(Path(sys.executable).parent / 'vaecausal')]


def one_line_error(r, msg):
    assert r.returncode == 2, (r.returncode, r.stderr[-2000:])
    assert msg in r.stderr and r.stderr.strip().count('\n') == 0 and 'Traceback' not in r.stderr, r.stderr


def test_model_inputs():
    m = build_model('vae').eval()
    for x, msg in [(torch.rand(2, 3, 64, 64), 'takes images [N, 1, 64, 64], got [2, 3, 64, 64]'),
                   (torch.zeros(2, 1, 64, 64, dtype=torch.uint8), 'convert uint8 images with data.to_float'),
                   (torch.rand(2, 1, 32, 32), 'got [2, 1, 32, 32]'),
                   (torch.full((2, 1, 64, 64), float('nan')), 'NaN or infinite')]:
        for f in (m, m.encode, m.representation):
            with pytest.raises(VaeCausalError, match=msg.replace('[', r'\[').replace(']', r'\]')): f(x)


@pytest.mark.parametrize('arch, hp, msg', [('beta_vae', 'beta=abc', 'beta must be a finite number'),
                                           ('beta_vae', 'beta=-50', 'beta must be in [0.0, inf)'),
                                           ('vq_vae', 'num_codes=0', 'num_codes must be in [1, inf)'),
                                           ('qlae', 'n_values=0', 'n_values must be in [2, inf)'),
                                           ('factor_vae', 'disc_layers=1.5', 'disc_layers must be an integer')])
def test_hyperparameters(tmp_path, arch, hp, msg):
    r = cli('train', '--arch', arch, '--hparam', hp, '--procedural', '--steps', '2', '--out', str(tmp_path / 'r'))
    one_line_error(r, msg)
    assert not (tmp_path / 'r').exists()


def test_output_folders(tmp_path):
    (tmp_path / 'afile').write_text('x')
    base = ['train', '--arch', 'vae', '--procedural', '--steps', '2', '--batch-size', '8', '--out']
    one_line_error(cli(*base, str(tmp_path / 'afile')), 'is a file, not a folder')
    one_line_error(cli(*base, str(tmp_path / 'afile' / 'run')), 'cannot create the run folder')
    one_line_error(cli(*base, '/proc/vaecausal/run'), 'cannot create the run folder')          # not writable, even for root
    one_line_error(cli('study', '--preset', 'quick', '--archs', 'vae', '--out', str(tmp_path / 'afile')),
                   'cannot create the study root')


def test_probe_cache_and_steps(tmp_path):
    ds = load_dataset('dsprites', procedural=True)
    with pytest.raises(VaeCausalError, match='steps must be a positive integer, got -5'):
        factor_probe(ds, steps=-5, root=tmp_path)
    assert list(tmp_path.iterdir()) == []
    factor_probe(ds, steps=3, root=tmp_path, progress=False)
    w = next(tmp_path.glob('probe-*')) / 'probe.safetensors'
    w.write_bytes(w.read_bytes()[:64])                                                         # truncated
    with pytest.raises(VaeCausalError, match=f'delete the folder {w.parent}'): factor_probe(ds, steps=3, root=tmp_path)
    w.write_bytes(b'{"planted": 1}' + b'\0' * 32)                                            # not safetensors at all
    with pytest.raises(VaeCausalError, match='is not a readable safetensors file'): factor_probe(ds, steps=3, root=tmp_path)


def test_indices_and_interventions():
    ds = load_dataset('dsprites', procedural=True)
    with pytest.raises(VaeCausalError, match='image indices must be integers'): ds.images([1.7])
    with pytest.raises(VaeCausalError, match=r'mask.nonzero\(\)'): ds.images(torch.zeros(len(ds), dtype=torch.bool))
    for dims in (1.5, (1.9,), (True,)):
        with pytest.raises(VaeCausalError, match='dims must be unit indices'): Intervention('x', 'zero', dims=dims)


def test_pruning_inputs(tmp_path):
    net = nn.Sequential(nn.Linear(6, 8), nn.ReLU(), nn.Linear(8, 3))
    X = torch.randn(64, 6)
    small = abstract(net, '2', X, keep=4, method='variance')                  # a tensor is one batch, not 64 rows
    assert small[2].in_features == 4
    save_json({'site': '2'}, tmp_path / 'abs' / 'abstraction.json')
    with pytest.raises(VaeCausalError, match='lacks producer, kept'): load_abstraction(tmp_path / 'abs', net)


def test_measure_options(tmp_path):
    run = tmp_path / 'run'
    train(TrainConfig(arch='vae', dataset_kwargs={'procedural': True}, steps=2, batch_size=8, progress=False, device='cpu',
                      out_dir=str(run)))
    one_line_error(cli('measure', str(run), '--causal-images', '-5'), 'causal_images must be an integer >= 2, got -5')
    one_line_error(cli('measure', str(run), '--sizes', '{"dci": 5}'), "sizes['dci'] must be 2 positive integers")
    assert not list(run.glob('measurement-*.json'))


def test_damaged_run_folders(tmp_path):
    cfg = dict(arch='vae', dataset_kwargs={'procedural': True}, batch_size=8, checkpoint_every=2, progress=False, device='cpu')
    def fresh(name):
        train(TrainConfig(steps=2, out_dir=str(tmp_path / name), **cfg)); return tmp_path / name
    d = fresh('noopt')
    st = torch.load(d / 'ckpt-2' / 'state.pt', weights_only=True); del st['opt']; torch.save(st, d / 'ckpt-2' / 'state.pt')
    with pytest.raises(VaeCausalError, match='lacks opt'): train(TrainConfig(steps=4, out_dir=str(d), **cfg))
    d = fresh('hist')
    (d / 'ckpt-2' / 'history.csv').write_text('step,loss\nnot,numbers\n')
    with pytest.raises(VaeCausalError, match='cannot be resumed'): train(TrainConfig(steps=4, out_dir=str(d), **cfg))
    d = fresh('listcfg')
    (d / 'config.json').write_text(json.dumps([1, 2, 3]))
    with pytest.raises(VaeCausalError, match='does not hold a training config'): train(TrainConfig(steps=4, out_dir=str(d), **cfg))


def _children(pid):
    out = subprocess.run(['ps', '-o', 'pid=', '--ppid', str(pid)], capture_output=True, text=True).stdout.split()
    return [int(p) for p in out]


def _alive(pid):
    try: os.kill(pid, 0); return Path(f'/proc/{pid}/stat').read_text().split()[2] != 'Z'
    except (ProcessLookupError, FileNotFoundError): return False


@pytest.mark.skipif(not sys.platform.startswith('linux'), reason='PR_SET_PDEATHSIG is Linux-only')
def test_study_workers_die_with_the_runner(tmp_path):
    spec = {'name': 'k', 'archs': ['vae', 'beta_vae'], 'steps': 400, 'batch_size': 8, 'probe_steps': 2}
    (tmp_path / 'spec.json').write_text(json.dumps(spec))
    p = subprocess.Popen(VAECAUSAL + ['study', '--spec', str(tmp_path / 'spec.json'), '--out', str(tmp_path / 'root'),
                                      '--workers', '2', '--no-progress'], cwd=ROOT, stdout=subprocess.DEVNULL,
                         stderr=subprocess.DEVNULL)
    deadline, workers = time.time() + 180, []
    while time.time() < deadline and not list((tmp_path / 'root' / 'runs').glob('*/config.json')):
        time.sleep(0.2)
    workers = [c for c in _children(p.pid) if 'python' in Path(f'/proc/{c}/cmdline').read_bytes().decode(errors='ignore')]
    assert workers, 'the study started no worker processes'
    p.send_signal(signal.SIGKILL)                                             # the runner alone, not its process group
    p.wait()
    deadline = time.time() + 20
    while time.time() < deadline and any(_alive(w) for w in workers): time.sleep(0.2)
    alive = [w for w in workers if _alive(w)]
    for w in alive: os.kill(w, signal.SIGKILL)
    assert not alive, f'{len(alive)} pool workers outlived the runner'


# issue #29, the reviewer's remaining findings: each input checked where it enters, one clear error each
def test_measurement_sizes_have_an_upper_bound(tmp_path):
    "1e9 images or points would end in an out-of-memory kill: refused when the spec or the command is read."
    for bad, msg in [({'causal_images': 10**9}, 'causal_images 1000000000 is more than 4096: for each latent the causal '
                      'metrics hold 7 decodes of every image at once (1.3 GiB at 4096 3×64×64 images), so more runs out '
                      'of memory; give at most 4096 (the paper preset uses 512)'),
                     ({'modularity_images': 10**9}, 'modularity_images 1000000000 is more than 256: for each treatment '
                      'circuit modularity holds about 65 decodes of every image at once'),
                     ({'metric_sizes': {'dci': [10**9, 500]}}, "metric_sizes dci [1000000000, 500]: at most 100000 points "
                      "a set (10 × disentanglement_lib's reference 10000): every point's code and factors are held in "
                      "memory and the metrics' classifiers are fitted on them (DCI's take ~5 min at 10000 points); give "
                      'smaller sizes')]:
        (tmp_path / 'spec.json').write_text(json.dumps({'name': 'x', 'archs': ['vae'], 'steps': 2, **bad}))
        one_line_error(cli('study', '--spec', tmp_path / 'spec.json', '--out', tmp_path / 'root'), msg)
        assert not (tmp_path / 'root').exists()
    # measure: checked before the run folder is even read
    one_line_error(cli('measure', tmp_path / 'no-run', '--causal-images', '1000000000'),
                   'causal_images 1000000000 is more than 4096')
    one_line_error(cli('measure', tmp_path / 'no-run', '--sizes', '{"mig": 1000000000}'),
                   'metric_sizes mig 1000000000: at most 100000 points a set')
    one_line_error(cli('measure', tmp_path / 'no-run', '--causal-images', '8', '--modularity-images', '16'),
                   'modularity_images 16 is more than causal_images 8: circuit modularity is measured on the first '
                   'modularity_images of the causal images; give at most as many')


def test_a_name_too_long_for_the_file_system(tmp_path):
    long = tmp_path / ('a' * 300)
    msg = "the name 'aaaaaaaaaaaaaaaaaaaaaaaa…' is 300 bytes long, more than the 255 this file system allows for one " \
          'name; choose a shorter name'
    one_line_error(cli('train', '--arch', 'vae', '--procedural', '--steps', '2', '--batch-size', '8', '--out', long),
                   f'--out: {msg}')
    one_line_error(cli('study', '--archs', 'vae', '--steps', '2', '--out', long), f'--out: {msg}')
    one_line_error(cli('report', long), f'ROOT: {msg}')
    one_line_error(cli('report', tmp_path, '--out', long), f'--out: {msg}')
    one_line_error(cli('measure', long), f'RUN: {msg}')
    with pytest.raises(VaeCausalError, match=f'out_dir: {msg}'): TrainConfig(out_dir=str(long)).validate()
    assert list(tmp_path.iterdir()) == []


def test_a_spec_file_that_is_not_utf8(tmp_path):
    (tmp_path / 'spec.json').write_bytes('{"name": "étude"}'.encode('latin-1'))
    one_line_error(cli('study', '--spec', tmp_path / 'spec.json', '--out', tmp_path / 'root'),
                   f'{tmp_path / "spec.json"} is not UTF-8 text (byte 0xe9 at position 10), so not a JSON file; save it '
                   'as UTF-8 JSON: an object of StudySpec fields')
    assert not (tmp_path / 'root').exists()


def test_a_metric_of_true_or_a_whole_number_in_metrics_json(tmp_path):
    from vaecausal_nb.report import MAIN_METRICS
    row = {'key': 'k', 'name': 'vae-dsprites-L10-s0-k', 'arch': 'vae', 'dataset': 'dsprites', 'procedural': True,
           'hparams': '{}', 'latent_dim': 10, 'seed': 0, 'steps': 100, 'seconds_train': 1.0, 'seconds_eval': 1.0,
           **{m: 0.5 for m in MAIN_METRICS}, 'mig': 1}
    save_json(row, tmp_path / 'runs' / row['name'] / 'metrics.json')
    r = cli('report', tmp_path)
    assert r.returncode == 0, r.stderr                                  # 1 is a number (the report used is_integer on it)
    assert '| 1 |' in (tmp_path / 'report.md').read_text()
    save_json({**row, 'mig': True}, tmp_path / 'runs' / row['name'] / 'metrics.json')
    one_line_error(cli('report', tmp_path), f'{tmp_path / "runs" / row["name"] / "metrics.json"} does not hold a run\'s '
                   'results (mig is true, not a number)')


def test_train_options_checked_before_the_run_folder_is_made(tmp_path):
    base = ['train', '--arch', 'beta_vae', '--procedural', '--steps', '2', '--batch-size', '8', '--out', tmp_path / 'r']
    one_line_error(cli(*base, '--seed', '-1'), 'seed must be an integer in [0, 2**32), got -1')
    one_line_error(cli(*[a if a != '2' else '100000000000000' for a in base]),
                   'steps 100,000,000,000,000 is more than 100,000,000, which no machine trains in a lifetime')
    one_line_error(cli(*base, '--hparam', 'beta=2', '--hparam', 'beta=8'),
                   '--hparam beta is given twice (beta=2 and beta=8); give each hyperparameter once')
    assert not (tmp_path / 'r').exists()


@pytest.mark.parametrize('native', [False, True])
def test_bf16_on_a_cpu_without_bf16_instructions_is_said(tmp_path, native):
    "bf16 on the CPU works (autocast); where oneDNN has no bf16 instructions it is emulated, slower than fp32: said."
    import logging
    import unittest.mock
    from vaecausal_nb import train as T
    said = []
    h = logging.Handler(logging.WARNING)
    h.emit = lambda r: said.append(r.getMessage())
    logging.getLogger('vaecausal_nb').addHandler(h)
    try:
        with unittest.mock.patch.object(T, '_cpu_has_bf16', lambda: native):
            r = cli('train', '--arch', 'vae', '--procedural', '--steps', '2', '--batch-size', '8', '--device', 'cpu',
                    '--precision', 'bf16', '--out', tmp_path / 'r')
    finally: logging.getLogger('vaecausal_nb').removeHandler(h)
    assert r.returncode == 0, r.stderr
    assert said == ([] if native else [
        "precision 'bf16' on this CPU, which has no bf16 instructions (AVX512-BF16 or AMX, as oneDNN reports): PyTorch "
        'emulates them, so training is slower than in fp32; train in fp32 here (--precision fp32), or on a GPU or a CPU '
        'with bf16 instructions'])


def test_measure_refuses_a_run_trained_part_way_and_a_folder_it_cannot_write(tmp_path, monkeypatch):
    import itertools
    import unittest.mock
    from vaecausal_nb import train as T
    monkeypatch.setenv('VAECAUSAL_ZOO', str(tmp_path / 'zoo'))              # where measure caches its factor probe
    run = tmp_path / 'run'
    cfg = dict(arch='vae', dataset_kwargs={'procedural': True}, batch_size=8, checkpoint_every=2, progress=False,
               device='cpu', out_dir=str(run))
    with unittest.mock.patch.object(T, '_now', side_effect=itertools.count()), pytest.raises(T.OutOfTime):
        train(TrainConfig(steps=8, **cfg), until=3)                          # stopped part-way (a kill leaves the same)
    step = int((run / 'LATEST').read_text()[5:])
    one_line_error(cli('measure', run), f'{run} is not finished: it has trained {step} of its 8 steps (a checkpoint, no '
                   f'final model.safetensors); finish it first by training the same config into {run} again (e.g. '
                   f'vaecausal train ... --steps 8 --out {run}: it goes on from its checkpoint)')
    train(TrainConfig(steps=8, **cfg))                                      # as the message says
    access = os.access                                                      # (as root, a chmod would not stop a write)
    name = measurement_path(run, measurement_settings('quick'), TrainConfig(steps=8, **cfg).validate().key()).name
    with unittest.mock.patch('os.access', lambda p, mode, *a, **kw: False if Path(p) == run else access(p, mode, *a, **kw)):
        one_line_error(cli('measure', run), f'{run} is not writable, and the measurement is written there '
                       f'({name}); make it writable, or measure a copy of the run folder in a place you can write to')
    (run / name).write_text('{"my": "notes"}')
    r = cli('measure', run)
    one_line_error(r, f'{run} holds {name}, which vaecausal_nb did not write there (or which changed since it did); '
                   'the measurement would overwrite it: move it away')
    assert '--out' not in r.stderr                                          # measure has no --out to give
    assert not (tmp_path / 'zoo').exists()                                  # refused before the factor probe trained


# issue #29, second review: a spec that repeats a value, names a folder outside study_runs/, or comes with a preset
@pytest.mark.parametrize('fields, says', [
    ({'seeds': [0, 0]}, 'a study names each value once, but seeds repeats 0: remove the repeats'),
    ({'archs': ['vae', 'vae'], 'datasets': ['dsprites', 'dsprites']},
     "a study names each value once, but archs repeats 'vae'; datasets repeats 'dsprites': remove the repeats"),
    ({'name': '../../etc'}, "name must be a plain folder name (letters, digits, '.', '_', '-'): it names the study's "
                            "folder under study_runs/, got '../../etc'")])
def test_a_spec_that_repeats_or_escapes_is_refused(tmp_path, fields, says):
    spec = tmp_path / 'spec.json'
    spec.write_text(json.dumps({'name': 'mine', 'archs': ['vae'], 'datasets': ['dsprites'], 'seeds': [0], **fields}))
    r = cli('study', '--spec', str(spec), '--plan')
    assert r.returncode == 2 and r.stderr.strip().endswith(says), r.stderr
    assert not (tmp_path / 'etc').exists() and not Path('study_runs/mine').exists()


def test_a_preset_with_a_spec_is_refused(tmp_path):
    spec = tmp_path / 'spec.json'
    spec.write_text(json.dumps({'name': 'mine', 'archs': ['vae'], 'datasets': ['dsprites'], 'seeds': [0]}))
    r = cli('study', '--spec', str(spec), '--preset', 'nonexistent', '--plan')
    assert r.returncode == 2 and 'give --spec or --preset, not both (--preset nonexistent would be ignored)' in r.stderr


def test_a_thread_count_no_machine_has_is_refused(tmp_path):
    spec = tmp_path / 'spec.json'
    spec.write_text(json.dumps({'name': 'mine', 'archs': ['vae'], 'datasets': ['dsprites'], 'seeds': [0]}))
    one_line_error(cli('study', '--spec', spec, '--threads', '100000', '--plan'),
                   'threads 100000 is more than 1024; give at most the cores a worker has')


def test_too_long_study_name_and_argparse_errors_are_one_line(tmp_path, monkeypatch):
    "A study name too long for a folder is refused before study_runs/ exists; argparse's own errors are one line too."
    monkeypatch.chdir(tmp_path)                               # the default root is study_runs/<name> under the cwd
    (tmp_path / 'spec.json').write_text(json.dumps({'name': 'x' * 300, 'archs': ['vae'], 'steps': 2}))
    one_line_error(cli('study', '--spec', tmp_path / 'spec.json'), 'name is 300 bytes long: it names the study\'s '
                   'folder under study_runs/, so give at most 100')
    assert not (tmp_path / 'study_runs').exists()
    one_line_error(cli('train', '--steps', 'abc'), "vaecausal train: error: argument --steps: invalid int value: 'abc' "
                   '(see vaecausal train --help)')
    one_line_error(cli(), 'vaecausal: error: the following arguments are required: cmd (see vaecausal --help)')
