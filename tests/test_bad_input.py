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


def test_evaluate_options(tmp_path):
    run = tmp_path / 'run'
    train(TrainConfig(arch='vae', dataset_kwargs={'procedural': True}, steps=2, batch_size=8, progress=False, device='cpu',
                      out_dir=str(run)))
    one_line_error(cli('evaluate', str(run), '--causal-images', '-5'), 'causal_images must be an integer >= 2, got -5')
    one_line_error(cli('evaluate', str(run), '--sizes', '{"dci": 5}'), "sizes['dci'] must be 2 positive integers")
    assert not list(run.glob('evaluation-*.json'))


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
