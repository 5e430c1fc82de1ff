"""Issue #29, the mechanisms' inputs: latent indices, `active` masks, decoder sites, pruning's keep / producer /
likelihood, saving and loading abstractions. Each bad input is one VaeCausalError with the exact text, raised where
the input enters; files the package did not write stay byte for byte as they were."""
import json
import re

import numpy as np
import pytest
import torch
from torch import nn

from vaecausal_nb.causal_metrics import causal_profile, ces, circuit_modularity, intervention_specificity
from vaecausal_nb.circuits import decoder_fidelity, latent_circuits
from vaecausal_nb.core import VaeCausalError, save_json
from vaecausal_nb.interventions import latent_sweep, mediation, value_grid
from vaecausal_nb.models import build_model
from vaecausal_nb.pruning import (ABSTRACTION_MARK, abstract, find_producer, load_abstraction, save_abstraction,
                                  reader_stats)

DEC_HOOKS = 'decoder.hook_fc1, decoder.hook_fc2, decoder.hooks.0, decoder.hooks.1, decoder.hooks.2, decoder.hook_out'
DEC_LAYERS = 'decoder.fc1, decoder.fc2, decoder.deconvs.0, decoder.deconvs.1, decoder.deconvs.2, decoder.deconvs.3'


def raises(msg):
    "pytest.raises for a VaeCausalError whose message contains `msg` exactly."
    return pytest.raises(VaeCausalError, match=re.escape(msg))


@pytest.fixture(scope='module')
def vae():
    torch.manual_seed(0)
    return build_model('vae', latent_dim=4).eval()


@pytest.fixture(scope='module')
def x():
    return torch.rand(8, 1, 64, 64, generator=torch.Generator().manual_seed(0))


@pytest.fixture(scope='module')
def mlp_abstraction():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(6, 8), nn.ReLU(), nn.Linear(8, 3))
    return net, abstract(net, '2', torch.randn(64, 6), keep=4, method='variance')


# 1. latent indices are integers (numpy integers too), never floats or bools
@pytest.mark.parametrize('latents', [[1.5], [True, False], [np.float64(2.0)], [1, True]])
def test_latent_sweep_indices(vae, x, latents):
    z = vae.representation(x).detach()
    g = value_grid(z.mean(0), z.std(0))
    with raises('latents must be latent indices: integers in 0..3 (Python or numpy integers, not bools or floats), '
                f'got {latents!r}'):
        latent_sweep(vae, z, g, latents=latents)


def test_latent_sweep_numpy_ints_and_range(vae, x):
    z = vae.representation(x[:2]).detach()
    g = value_grid(z.mean(0), z.std(0), ks=(0, 1))
    assert latent_sweep(vae, z, g, latents=np.array([3, 0])).shape[:2] == (2, 2)
    with raises('latent index 4 is out of range 0..3'): latent_sweep(vae, z, g, latents=[4])
    with raises('latent must be latent indices: integers in 0..3'): mediation(vae, z, 1.5, 1.0, 'decoder.hooks.0')


# 2. `active` is a boolean mask [L] for every causal metric; index arrays are refused, not read as masks
METRICS = {'ces': lambda m, x, a: ces(m, x, active=a),
           'specificity': lambda m, x, a: intervention_specificity(m, x, active=a),
           'profile': lambda m, x, a: causal_profile(m, x, active=a),
           'modularity': lambda m, x, a: circuit_modularity(m, x, active=a, n_boot=0, n_null=0),
           'circuits': lambda m, x, a: latent_circuits(m, x, active=a),
           'fidelity': lambda m, x, a: decoder_fidelity(m, m, x, active=a)}


@pytest.mark.parametrize('name', list(METRICS))
def test_active_is_a_mask(vae, x, name):
    idx = np.arange(4)
    with raises('active must be a boolean mask with one True/False per latent (e.g. active_latents(model, x).active), '
                f'got {idx.dtype} values of shape [4]; to pass latent indices idx use np.isin(np.arange(L), idx)'):
        METRICS[name](vae, x, idx)
    with raises('active has 3 entries but the model has 4 latents'): METRICS[name](vae, x, [True, False, True])


def test_active_mask_from_indices(vae, x):
    mask = np.isin(np.arange(4), [1, 2, 3])
    r = ces(vae, x, active=mask)
    assert r.passive == [0] and np.isnan(r.per_latent[0]) and np.isfinite(r.per_latent[1:]).all()


# 3. the site is checked before anything runs: it must be in the decoder
def test_modularity_site(vae, x):
    with raises(f"GaussianVAE has no site 'decoder.bogus'; pass site= a hook point in the decoder, one of: {DEC_HOOKS}"):
        circuit_modularity(vae, x, site='decoder.bogus', active=[False] * 4)
    with raises("the site 'encoder.hooks.0' is not in the decoder (model.decode never runs it) and must be; pass site= "
                f'a hook point in the decoder, one of: {DEC_HOOKS}'):
        circuit_modularity(vae, x, site='encoder.hooks.0')


def test_circuit_reader(vae, x):
    with raises("the reader 'encoder.convs.3' is not in the decoder (model.decode never runs it) and must be; pass reader= "
                f'a Linear or 2-D convolution layer in the decoder, one of: {DEC_LAYERS}'):
        latent_circuits(vae, x, reader='encoder.convs.3')
    with raises("GaussianVAE has no reader 'decoder.bogus'; pass reader= a Linear or 2-D convolution layer in the decoder"):
        latent_circuits(vae, x, reader='decoder.bogus')


# 4. keep is a positive integer, not a bool
@pytest.mark.parametrize('keep', [True, np.bool_(True), 0, 65, 2.0])
def test_keep(vae, x, keep):
    with raises(f'keep must be an integer in 1..64 (the units decoder.deconvs.1 reads), got {keep!r}'):
        abstract(vae, 'decoder.deconvs.1', x, keep=keep)


# 5. the producer is the layer the data flow through: decoder.deconvs.0 reads decoder.fc2, not encoder.convs.3
def test_producer_in_the_decoder(vae, x):
    assert find_producer(vae, 'decoder.deconvs.0', x) == 'decoder.fc2'
    small = abstract(vae, 'decoder.deconvs.0', x, keep=32)
    rec = small.abstraction
    assert (rec['reader'], rec['producer'], rec['select']) == ('decoder.deconvs.0', 'decoder.fc2', True)
    assert small.decoder.deconvs[0].conv.in_channels == 32
    for k, v in vae.encoder.state_dict().items(): assert torch.equal(small.encoder.state_dict()[k], v), k
    with torch.no_grad():
        assert small(x)['logits'].shape == (8, 1, 64, 64)
        assert small.decode(vae.representation(x)).shape == (8, 1, 64, 64)
    with raises("no convolution before 'decoder.deconvs.0' in decoder produces its 64 inputs; pass producer= explicitly"):
        find_producer(vae, 'decoder.deconvs.0')


# 6. the likelihood fits the output: chosen from its shape, or one error
def test_likelihood(vae, x):
    st = reader_stats(vae, 'decoder.deconvs.1', x)                       # an image output: Bernoulli
    assert torch.equal(st.h, reader_stats(vae, 'decoder.deconvs.1', x, likelihood='bernoulli').h)
    with raises("likelihood='categorical' needs class logits [N, classes], but the model's output has shape "
                "[8, 1, 64, 64]; for images use likelihood='bernoulli' (per-pixel logits) or 'gaussian', or leave "
                'likelihood=None to choose from the shape'):
        abstract(vae, 'decoder.deconvs.1', x, keep=32, likelihood='categorical')


# 7. saving refuses files the package did not write; loading names the file and the malformed field
def test_save_onto_a_users_file(tmp_path, mlp_abstraction):
    _, small = mlp_abstraction
    f = tmp_path / 'notes'
    f.write_bytes(b'my notes')
    with raises(f'{f} is a file, not a folder: save_abstraction writes a folder (model.safetensors and '
                'abstraction.json); choose another path'):
        save_abstraction(small, f)
    assert f.read_bytes() == b'my notes'
    for name in ('model.safetensors', 'abstraction.json'):
        d = tmp_path / name.split('.')[0]
        d.mkdir()
        (d / name).write_bytes(b'not ours')
        with raises(f'{d / name} exists and was not written by save_abstraction; it is left untouched: choose another '
                    'folder, or move that file away'):
            save_abstraction(small, d)
        assert [p.name for p in d.iterdir()] == [name] and (d / name).read_bytes() == b'not ours'


def test_save_replaces_its_own(tmp_path, mlp_abstraction):
    net, small = mlp_abstraction
    save_abstraction(small, tmp_path / 'abs')
    assert json.loads((tmp_path / 'abs' / 'abstraction.json').read_text())['written_by'] == ABSTRACTION_MARK
    (tmp_path / 'abs' / 'readme.txt').write_bytes(b'mine')
    save_abstraction(small, tmp_path / 'abs')                          # a previous abstraction of ours: replaced
    back = load_abstraction(tmp_path / 'abs', net)
    assert back.abstraction == small.abstraction
    assert (tmp_path / 'abs' / 'readme.txt').read_bytes() == b'mine'
    assert sorted(p.name for p in (tmp_path / 'abs').iterdir()) == ['abstraction.json', 'model.safetensors',
                                                                    'readme.txt']


@pytest.mark.parametrize('field, value, msg', [
    ('kept', 5, "'kept' (5): it must be a list of distinct unit indices in 0..7"),
    ('kept', 'abc', "'kept' ('abc'): it must be a list of distinct unit indices in 0..7"),
    ('kept', [0, 0], "'kept' ([0, 0]): it must be a list of distinct unit indices in 0..7"),
    ('kept', [1.5, 2], "'kept' ([1.5, 2]): it must be a list of distinct unit indices in 0..7"),
    ('reader', ['2'], "'reader' (['2']): it must be the name of a layer of Sequential")])
def test_load_malformed_linear(tmp_path, mlp_abstraction, field, value, msg):
    net, small = mlp_abstraction
    save_abstraction(small, tmp_path / 'abs')
    meta = json.loads((tmp_path / 'abs' / 'abstraction.json').read_text())
    save_json({**meta, field: value}, tmp_path / 'abs' / 'abstraction.json')
    with raises(f"{tmp_path / 'abs' / 'abstraction.json'} has a malformed {msg}; save the abstraction again with "
                'save_abstraction'):
        load_abstraction(tmp_path / 'abs', net)


@pytest.mark.parametrize('field, value, msg', [
    ('map_shape', 'x', "'map_shape' ('x'): it must be three positive integers [32, H, W]"),
    ('map_shape', [32, 0, 16], "'map_shape' ([32, 0, 16]): it must be three positive integers [32, H, W]"),
    ('in_hw', [8], "'in_hw' ([8]): it must be two positive integers (the height and width the reader reads)"),
    ('kept', list(range(70)),
     "'kept' ([0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 1…): it must be a list of distinct unit "
     'indices in 0..63')])
def test_load_malformed_conv(tmp_path, vae, x, field, value, msg):
    z = vae.representation(x).detach()
    small = abstract(vae, 'decoder.deconvs.1', z, keep=16, forward=lambda m, c: m.decode(c))
    save_abstraction(small, tmp_path / 'abs')
    meta = json.loads((tmp_path / 'abs' / 'abstraction.json').read_text())
    save_json({**meta, field: value}, tmp_path / 'abs' / 'abstraction.json')
    with raises(f"{tmp_path / 'abs' / 'abstraction.json'} has a malformed {msg}"):
        load_abstraction(tmp_path / 'abs', vae)


# 8. reader_stats leaves the global random state alone
def test_reader_stats_generator(vae, x):
    torch.manual_seed(7); expected = torch.rand(4)
    torch.manual_seed(7); st = reader_stats(vae, 'decoder.deconvs.2', x); got = torch.rand(4)
    assert torch.equal(expected, got)
    assert torch.equal(reader_stats(vae, 'decoder.deconvs.2', x).h, st.h)
