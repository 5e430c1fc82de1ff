"""Nothing a user wrote is ever deleted or overwritten: each case found by trying the package as a user would."""
import errno
import json
import os
import sys
import unittest.mock
from pathlib import Path

import h5py
import numpy as np
import pytest

from conftest import cli  # the `vaecausal` command run in this process
from vaecausal_nb.core import VaeCausalError
from vaecausal_nb.data import load_dataset
from vaecausal_nb.study import StudySpec, run_study
from vaecausal_nb.train import TrainConfig, train

ROOT = Path(__file__).resolve().parents[1]
VAECAUSAL = [str(Path(sys.executable).parent / 'vaecausal')]
TRAIN = ['train', '--arch', 'vae', '--procedural', '--batch-size', '8', '--device', 'cpu', '--checkpoint-every', '4']


def snapshot(folder: Path) -> dict:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob('*')) if p.is_file()}


def test_train_refuses_a_folder_it_did_not_write(tmp_path):
    out = tmp_path / 'mine'
    (out / 'ckpt-old-notes').mkdir(parents=True)
    (out / 'ckpt-old-notes' / 'results.txt').write_text('three weeks of notes')
    (out / 'history.csv').write_text('step,my own numbers\n')
    before = snapshot(out)
    r = cli(*TRAIN, '--steps', '4', '--out', str(out))
    assert r.returncode == 2, r.stderr
    assert 'holds no run (no config.json)' in r.stderr and r.stderr.strip().count('\n') == 0
    assert snapshot(out) == before


def test_only_the_trainers_own_checkpoints_are_removed(tmp_path):
    out = tmp_path / 'run'
    assert cli(*TRAIN, '--steps', '4', '--out', str(out)).returncode == 0
    (out / 'ckpt-notes').mkdir()
    (out / 'ckpt-notes' / 'keep.txt').write_text('mine')
    assert cli(*TRAIN, '--steps', '8', '--out', str(out)).returncode == 0      # continued: ckpt-4 replaced by ckpt-8
    assert sorted(p.name for p in out.glob('ckpt-*')) == ['ckpt-8', 'ckpt-notes']
    assert (out / 'ckpt-notes' / 'keep.txt').read_text() == 'mine'


def test_fewer_steps_than_trained_is_refused(tmp_path):
    out = tmp_path / 'run'
    assert cli(*TRAIN, '--steps', '8', '--out', str(out)).returncode == 0
    before = snapshot(out)
    r = cli(*TRAIN, '--steps', '4', '--out', str(out))
    assert r.returncode == 2 and 'already holds 8 trained steps, more than the 4 asked for' in r.stderr
    assert snapshot(out) == before                                            # config.json still says 8 steps


def test_a_bad_hparam_writes_nothing_and_the_fix_then_runs(tmp_path):
    out = tmp_path / 'run'
    r = cli('train', '--arch', 'beta_vae', '--hparam', 'beta=abc', '--procedural', '--steps', '4', '--batch-size', '8',
            '--out', str(out))
    assert r.returncode == 2 and 'beta must be a finite number' in r.stderr
    assert not out.exists()
    r = cli('train', '--arch', 'beta_vae', '--hparam', 'beta=2', '--procedural', '--steps', '4', '--batch-size', '8',
            '--device', 'cpu', '--out', str(out))
    assert r.returncode == 0, r.stderr


def _dsprites(path, imgs_scale=1):
    sizes = (1, 3, 2, 2, 2, 2)
    n = int(np.prod(sizes))
    classes = np.stack(np.unravel_index(np.arange(n), sizes), 1)
    imgs = (np.arange(n * 64 * 64).reshape(n, 64, 64) % 2).astype(np.uint8) * imgs_scale
    np.savez(path, imgs=imgs, latents_classes=classes, latents_values=classes.astype(float))


@pytest.mark.parametrize('scale', [255, 2])
def test_dsprites_pixels_out_of_range_are_refused(tmp_path, scale):
    _dsprites(tmp_path / 'dsprites_ndarray_co1sh3sc6or40x32y32_64x64.npz', scale)
    with pytest.raises(VaeCausalError, match=rf'pixel values up to {scale}, expected 0..1'):
        load_dataset('dsprites', root=tmp_path, procedural=False)
    _dsprites(tmp_path / 'dsprites_ndarray_co1sh3sc6or40x32y32_64x64.npz', 1)
    assert load_dataset('dsprites', root=tmp_path, procedural=False).images([0]).max() == 255


def test_float_3dshapes_images_are_refused(tmp_path):
    sizes = (2, 1, 1, 1, 1, 2)
    n = int(np.prod(sizes))
    labels = np.stack(np.unravel_index(np.arange(n), sizes), 1).astype(float)
    with h5py.File(tmp_path / '3dshapes.h5', 'w') as h:
        h['images'] = np.random.default_rng(0).random((n, 64, 64, 3)).astype(np.float32)
        h['labels'] = labels
    with pytest.raises(VaeCausalError, match='holds float32 images, expected uint8'):
        load_dataset('shapes3d', root=tmp_path, procedural=False)


@pytest.mark.parametrize('bad, msg', [({'metric_sizes': {'dci': 5}}, "sizes['dci'] must be 2 positive integers"),
                                      ({'seeds': [-1]}, 'seeds must be integers >= 0, got -1')])
def test_study_spec_errors_surface_before_anything_runs(tmp_path, bad, msg):
    spec = json.loads(json.dumps({'name': 'x', 'archs': ['vae'], 'steps': 2, **bad}))
    (tmp_path / 'spec.json').write_text(json.dumps(spec))
    r = cli('study', '--spec', str(tmp_path / 'spec.json'), '--out', str(tmp_path / 'root'), '--no-progress')
    assert r.returncode == 2 and msg in r.stderr
    assert not (tmp_path / 'root').exists()                                   # nothing trained, nothing written


def test_full_disk_during_a_checkpoint_keeps_the_last_good_one(tmp_path):
    cfg = dict(arch='vae', dataset_kwargs={'procedural': True}, batch_size=8, checkpoint_every=2, progress=False,
               device='cpu', out_dir=str(tmp_path / 'run'))
    train(TrainConfig(steps=2, **cfg))
    good = snapshot(tmp_path / 'run' / 'ckpt-2')
    def full(fd): raise OSError(errno.ENOSPC, 'No space left on device')
    with unittest.mock.patch('os.fsync', full), pytest.raises(VaeCausalError, match=r'No space left on device'):
        train(TrainConfig(steps=4, **cfg))
    assert snapshot(tmp_path / 'run' / 'ckpt-2') == good
    assert (tmp_path / 'run' / 'LATEST').read_text() == 'ckpt-2'
    assert not list((tmp_path / 'run').glob('.*.tmp')) and not list((tmp_path / 'run').rglob('.ckpt-*'))
    run = train(TrainConfig(steps=4, **cfg))                                  # space again: it resumes and finishes
    assert int(run.history['step'].iloc[-1]) == 4


def test_an_empty_study_root_gets_no_empty_bar(tmp_path, capfd):
    spec = StudySpec(name='none', archs=('vae',), steps=2, batch_size=8, probe_steps=2, causal_images=4, modularity_images=2,
                     metric_sizes={'dci': (100, 80), 'mig': 100, 'sap': (100, 80), 'factor_vae': (4, 4, 40),
                                   'beta_vae': (4, 4), 'irs': 100})
    run_study(spec, tmp_path, workers=1, progress=False)
    capfd.readouterr()
    run_study(spec, tmp_path, workers=1, progress=True)                       # everything finished: nothing to show
    assert '0it' not in capfd.readouterr().err
    assert not list((tmp_path / 'runs').glob('.*.lock'))                     # lock files go with their runs
    assert os.stat(tmp_path / 'runs' / next(p.name for p in (tmp_path / 'runs').iterdir()) / 'metrics.json').st_mode & 0o044
