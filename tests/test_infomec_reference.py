"""`metrics.infomec` against the authors' definition of InfoMEC (Hsu et al. 2023, `disentangle/metrics/infomec.py` in
kylehkhsu/latent_quantization), computed here step by step as their standalone file computes it. The reference below
is a plain transcription of their formulas, written for this test (not their code), with today's spellings of two
sklearn arguments (`C=np.inf` for `penalty=None`; no `multi_class`, removed in sklearn 1.8: the same fit for three or
more classes). The codes' binary source (InfoE of a two-class factor) is therefore checked against today's
scikit-learn only: the authors passed `multi_class='multinomial'`, which current scikit-learn has removed, and it now
fits the binary logistic model to two classes, so that source is not checked against the authors' exact fit.

Tolerances:
- discrete latents (exact plug-in MI, one-hot regressions): equal to float precision, 1e-12;
- continuous latents at the same seed: equal to float precision, 1e-12;
- continuous latents against their unseeded code: `random_state=None` draws fresh jitter in every
  `mutual_info_classif` call, which the reference models by passing one `np.random.RandomState` that every call draws
  from (reproducible, but a new draw per source-latent pair; ours uses one seed for every pair). On a code without
  ties the 1e-10 jitter can at most move a neighbour count at a boundary, about 1e-4 in an NMI entry, so 1e-3 (here
  the numbers come out identical); on a code with ties (the true factors scored as continuous) the jitter decides
  which tied points are neighbours: over 20 such repetitions at 2,000 points an NMI entry's standard deviation was at
  most 0.0054 and InfoM's and InfoC's 0.0039, and ours (seed 0) differed from the reference by at most 0.020 (NMI)
  and 0.010 (InfoM, InfoC); the tolerances 0.05 and 0.03 are over 6 and 5 standard deviations of a difference.
  They cover tied codes whose columns differ, not identical columns: two identical columns get identical estimates
  from our shared seed but different ones from fresh jitter, which can move InfoC far more (a factor copied into
  every latent: 0 in ours, NaN or 0.24-0.79 in theirs; see 05_metrics). InfoE has no randomness: equal.
"""
import warnings

import numpy as np
from sklearn.feature_selection import mutual_info_classif
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import log_loss, mutual_info_score
from sklearn.preprocessing import LabelEncoder, OneHotEncoder, StandardScaler

from vaecausal_nb.metrics import infomec

N, SIZES = 2000, (3, 6, 10, 2, 8)          # a binary source too


def _null_or_code_loss(X, y):
    "Log loss on its own points of the unpenalised, class-balanced multinomial regression (their `logistic_regression`)."
    m = LogisticRegression(C=np.inf, tol=1e-4, fit_intercept=True, class_weight='balanced', solver='lbfgs',
                           max_iter=100)
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')                  # their 100 iterations rarely converge on separable codes
        m.fit(X, y)
    return log_loss(y, m.predict_proba(X))


def reference_infomec(sources, latents, discrete_latents, random_state):
    """InfoMEC as the authors' standalone file defines it, one formula at a time. `random_state` goes to every k-NN
    call: an int gives each call the same jitter (as ours does), a `RandomState` a fresh draw per call (as theirs)."""
    K, L = sources.shape[1], latents.shape[1]
    s = np.stack([LabelEncoder().fit_transform(sources[:, i]) for i in range(K)], axis=1)
    if discrete_latents:
        z = np.stack([LabelEncoder().fit_transform(latents[:, j]) for j in range(L)], axis=1)
    else:                                               # each latent standardised on its own
        z = np.concatenate([StandardScaler().fit_transform(latents[:, j][:, None]) for j in range(L)], axis=1)
    nmi = np.empty((K, L))
    for i in range(K):
        for j in range(L):
            if discrete_latents: nmi[i, j] = mutual_info_score(s[:, i], z[:, j])
            else: nmi[i, j] = mutual_info_classif(z[:, j][:, None], s[:, i], discrete_features=False, n_neighbors=10,
                                                  random_state=random_state)[0]
        nmi[i, :] = nmi[i, :] / mutual_info_score(s[:, i], s[:, i])
    ranges = latents.max(axis=0) - latents.min(axis=0)
    active = ranges > 0 if discrete_latents else ranges > ranges.max() / 20
    la = active.sum()
    p = nmi[:, active]
    infom = (np.mean(p.max(axis=0) / p.sum(axis=0)) - 1 / K) / (1 - 1 / K)
    infoc = (np.mean(p.max(axis=1) / p.sum(axis=1)) - 1 / la) / (1 - 1 / la)
    x = OneHotEncoder().fit_transform(latents) if discrete_latents else StandardScaler().fit_transform(latents)
    per_source = []
    for i in range(K):
        conditional = _null_or_code_loss(x, s[:, i])
        marginal = _null_or_code_loss(np.zeros(latents.shape), s[:, i])
        per_source.append((marginal - conditional) / marginal)
    return {'infom': infom, 'infoe': np.mean(per_source), 'infoc': infoc, 'nmi': nmi, 'active_latents': active}


def _factors(seed):
    g = np.random.default_rng(seed)
    return np.stack([g.integers(0, n, N) for n in SIZES], axis=1)


def _discrete_codes():
    "Two quantised codes: a QLAE-like one (each latent a few values of a noisy mix; one latent constant), and raw ints."
    y = _factors(0)
    g = np.random.default_rng(1)
    mix = (y / (np.array(SIZES) - 1)) @ g.normal(size=(5, 6)) * 0.4 + 0.3 * g.normal(size=(N, 6))
    mix[:, :5] += y / (np.array(SIZES) - 1)
    grid = np.linspace(-1, 1, 7)                                       # a 7-value codebook per latent
    q = grid[np.abs(mix[:, :, None] - grid).argmin(-1)]
    q[:, 5] = grid[3]                                                 # a dead latent: inactive
    return y, {'qlae-like': q, 'factor classes': y[:, [0, 2, 1, 4, 3]] * 3 + 1}


def _continuous_codes():
    y = _factors(2)
    g = np.random.default_rng(3)
    ystd = (y - y.mean(0)) / y.std(0)
    rot = np.linalg.qr(g.normal(size=(5, 5)))[0]
    tie_free = np.c_[ystd @ rot + 0.2 * g.normal(size=(N, 5)), g.normal(size=N), 0.01 * g.normal(size=N)]
    return y, {'tie-free (mixed, noisy, one small latent)': tie_free, 'tied (the factors themselves)': y.astype(float)}


def _close(ours, ref, tol):
    np.testing.assert_array_equal(ours['active_latents'], ref['active_latents'])
    np.testing.assert_allclose(ours['nmi'], ref['nmi'], rtol=0, atol=tol)
    for k in ('infom', 'infoc'): assert abs(ours[k] - ref[k]) <= tol, (k, ours[k], ref[k])


def test_discrete_equal_to_float_precision():
    y, codes = _discrete_codes()
    for name, z in codes.items():
        ours, ref = infomec(y, z, discrete_latents=True), reference_infomec(y, z, True, None)
        _close(ours, ref, 1e-12)
        assert abs(ours['infoe'] - ref['infoe']) <= 1e-12, name
    assert not infomec(y, codes['qlae-like'], discrete_latents=True)['active_latents'][5]


def test_continuous_same_seed_equal_to_float_precision():
    y, codes = _continuous_codes()
    for name, z in codes.items():
        ours, ref = infomec(y, z, seed=7), reference_infomec(y, z, False, 7)
        _close(ours, ref, 1e-12)
        assert abs(ours['infoe'] - ref['infoe']) <= 1e-12, name


def test_continuous_within_the_jitter_spread():
    y, codes = _continuous_codes()
    tie_free, tied = codes.values()
    ours = infomec(y, tie_free, seed=0)
    assert ours['active_latents'].tolist() == [True] * 6 + [False]              # 0.01 σ: below 1/20 of the range
    for rs in (1, 2, 3):                             # their unseeded calls: fresh jitter per call, reproducibly
        _close(ours, reference_infomec(y, tie_free, False, np.random.RandomState(rs)), 1e-3)
    ours = infomec(y, tied, seed=0)
    for rs in (1, 2, 3):
        ref = reference_infomec(y, tied, False, np.random.RandomState(rs))
        np.testing.assert_allclose(ours['nmi'], ref['nmi'], rtol=0, atol=0.05)
        for k in ('infom', 'infoc'): assert abs(ours[k] - ref[k]) <= 0.03, (k, ours[k], ref[k])
        assert ours['infoe'] == ref['infoe']                                     # InfoE has no randomness
