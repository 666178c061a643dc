"""Conformance suite over every registered method (and preset), on tiny models.

For each ``name in jaxmu.methods.list_methods()`` (read at collection time, so methods
added later are included automatically) and each of two tiny models (an MLP, and a small
CNN with BatchNorm) on a 64-example digits pool:

(a) the jitted method compiles once per input shape (two calls, two keys);
(b) the same key gives bit-identical outputs;
(c) different keys give different outputs when ``definition.random`` (identical otherwise);
(d) the output pytrees keep the input's structure, shapes and dtypes (``activation_pruning``
    may add ``model_state["act_masks"]``);
(e) ``jax.vmap(method.fn)`` over 4 models equals a Python loop over them;
(f) every method declares what it may change (``touches``) and leaves the rest bit-identical;
(g) bad names, hyperparameters and arguments raise ValueError naming the valid choices.

Hyperparameters are shrunk for speed: every ``*epoch*`` count and ``*steps`` count -> 1,
every ``*batch_size`` -> 16.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from _helpers import digits_subset_splits, flat_paths, tree_bitwise_equal

from jaxmu.methods import get_method, list_methods
from jaxmu.models import ALL, Selector, mlp, small_cnn

METHODS = list_methods()
MODELS = {
    "mlp": mlp((8, 8, 1), 10, hidden=(16, 16)),  # two blocks: last_k_blocks(1) freezes one
    "cnn": small_cnn((8, 8, 1), 10, channels=(4, 8)),
}
N_MODELS = 4
# XLA:CPU spends most of this suite compiling; the population init (an input, not a result)
# compiles without the expensive backend passes.
FAST_COMPILE = {"xla_backend_optimization_level": 0, "xla_llvm_disable_expensive_passes": True}
ADDS_STATE = {"activation_pruning": {"act_masks"}}  # documented extra model_state entries
# Methods that may return their input (checkpoint selection can pick the original), and the
# hyperparameters that turn the selection off for the key-dependence check.
SELECTS_CHECKPOINT = {"scrub": {"selection": "final"}}

# Known conformance failures the method's author must fix: {(method, check): reason}.
XFAIL: dict[tuple[str, str], str] = {}


def small_hparams(method) -> dict:
    """Shrinks epoch/step counts to 1 and batch sizes to 16 where the method has them."""
    hp = {}
    for k, v in method.defaults.items():
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            continue
        if "epoch" in k or k.endswith("steps"):
            hp[k] = 1
        elif k.endswith("batch_size"):
            hp[k] = 16
    return hp


def _xfail(request, name, check):
    reason = XFAIL.get((name, check))
    if reason:
        request.applymarker(pytest.mark.xfail(reason=reason, strict=True))


@pytest.fixture(scope="module")
def splits():
    return digits_subset_splits(64)  # forget 8, val 8, test 8, retain 40


@pytest.fixture(scope="module", params=list(MODELS))
def population(request):
    """4 models of one architecture, initialised from 4 keys (stacked on axis 0)."""
    model = MODELS[request.param]
    keys = jax.random.split(jax.random.key(42), N_MODELS)
    params, state = jax.jit(jax.vmap(model.init), compiler_options=FAST_COMPILE)(keys)
    return request.param, model, params, state


def _at(tree, i):
    return jax.tree.map(lambda a: a[i], tree)


@pytest.fixture(scope="module", params=METHODS)
def run(request, population, splits):
    """The bound method and its outputs for model 0 with keys 0, 0 (again) and 1."""
    name = request.param
    model_name, model, params, state = population
    method = get_method(name)
    method = get_method(name, **small_hparams(method)).bind(model)
    p0, s0 = _at(params, 0), _at(state, 0)
    out0 = method(p0, s0, splits, jax.random.key(0))
    out0b = method(p0, s0, splits, jax.random.key(0))
    out1 = method(p0, s0, splits, jax.random.key(1))
    return dict(name=name, model_name=model_name, model=model, method=method, inp=(p0, s0),
                splits=splits, out0=out0, out0b=out0b, out1=out1)


# ----------------------------------------------------------------------------- (a)-(d)


def test_compiles_once(run, request):
    _xfail(request, run["name"], "compile")
    assert run["method"].jitted._cache_size() == 1


def test_same_key_bitwise_identical(run, request):
    _xfail(request, run["name"], "same_key")
    assert tree_bitwise_equal(run["out0"], run["out0b"])


def test_key_dependence(run, request):
    _xfail(request, run["name"], "keys")
    same = tree_bitwise_equal(run["out0"], run["out1"])
    name = run["name"]
    if same and name in SELECTS_CHECKPOINT and tree_bitwise_equal(run["out0"], run["inp"]):
        # Both keys selected the original (a legitimate outcome of checkpoint selection on
        # 8 forget examples, where error ties are common): check the trained trajectory.
        method = run["method"].with_hparams(**SELECTS_CHECKPOINT[name])
        p0, s0 = run["inp"]
        out0 = method(p0, s0, run["splits"], jax.random.key(0))
        out1 = method(p0, s0, run["splits"], jax.random.key(1))
        same = tree_bitwise_equal(out0, out1)
    if run["method"].definition.random:
        assert not same, "different keys gave identical outputs but the method is random"
    else:
        assert same, "definition.random is False but the output depends on the key"


def test_structure_shapes_dtypes(run, request):
    _xfail(request, run["name"], "structure")
    (p_in, s_in), (p_out, s_out) = run["inp"], run["out0"]
    assert jax.tree.structure(p_out) == jax.tree.structure(p_in)
    for a, b in zip(jax.tree.leaves(p_out), jax.tree.leaves(p_in), strict=True):
        assert (a.shape, a.dtype) == (b.shape, b.dtype)
    extra = set(s_out) - set(s_in)
    assert extra <= ADDS_STATE.get(run["name"], set()), f"unexpected model_state keys {extra}"
    assert set(s_in) <= set(s_out)
    kept = {k: s_out[k] for k in s_in}
    assert jax.tree.structure(kept) == jax.tree.structure(dict(s_in))
    for a, b in zip(jax.tree.leaves(kept), jax.tree.leaves(dict(s_in)), strict=True):
        assert (a.shape, a.dtype) == (b.shape, b.dtype)
    if "act_masks" in extra:  # shaped like the activation sites without the batch axis
        x = jnp.zeros((2, *run["model"].input_shape))
        acts = jax.eval_shape(lambda: run["model"].activations(p_in, s_in, x))
        assert jax.tree.structure(s_out["act_masks"]) == jax.tree.structure(acts)
        for m, a in zip(jax.tree.leaves(s_out["act_masks"]), jax.tree.leaves(acts),
                        strict=True):
            assert m.shape == a.shape[1:]
    for leaf in jax.tree.leaves((p_out, s_out)):
        assert bool(jnp.all(jnp.isfinite(leaf))), "non-finite output"


# ----------------------------------------------------------------------------- (e) vmap

ADAM_METHODS = {"bad_teacher", "sftc"}


def test_vmap_equals_loop(run, population, splits, request):
    _xfail(request, run["name"], "vmap")
    _, _, params, state = population
    method = run["method"]
    keys = jax.random.split(jax.random.key(7), N_MODELS)
    # Adam divides by near-zero second moments for weights with tiny gradients, which
    # magnifies the re-association noise of batched kernels (~3e-4 after an epoch).
    atol = 1e-3 if run["name"] in ADAM_METHODS else 1e-5
    # Default compiler options on both sides: fewer XLA passes change rounding (~1e-3 after
    # an Adam epoch), which would hide real vmap/loop differences behind a loose tolerance.
    vp, vs = jax.jit(jax.vmap(method.fn, in_axes=(0, 0, None, 0)))(params, state, splits, keys)
    for i in range(N_MODELS):
        lp, ls = method(_at(params, i), _at(state, i), splits, keys[i])
        got, want = (_at(vp, i), _at(vs, i)), (lp, ls)
        assert jax.tree.structure(got) == jax.tree.structure(want)
        for (path, a), b in zip(jax.tree_util.tree_flatten_with_path(got)[0],
                                jax.tree.leaves(want), strict=True):
            np.testing.assert_allclose(
                np.asarray(a, np.float64), np.asarray(b, np.float64), rtol=1e-4, atol=atol,
                err_msg=f"model {i} {jax.tree_util.keystr(path)}")


# ----------------------------------------------------------------------------- (f) touches


@pytest.mark.parametrize("name", METHODS)
def test_touches_declared(name):
    """Every method declares what it may change ("all", "none", a selector, or a function of
    its hyperparameters); the declaration resolves to a Selector."""
    m = get_method(name)
    assert m.definition.touches is not None, f"{name}: its config declares no touches"
    assert isinstance(m.touches, Selector)


def test_touches_resolve_hyperparameters():
    model = MODELS["mlp"]
    params, _ = jax.eval_shape(model.init, jax.random.key(0))
    flags = flat_paths(get_method("cf_k", num_blocks=0).touches(model, params))
    assert flags == {"dense0/bias": False, "dense0/kernel": False, "dense1/bias": False,
                     "dense1/kernel": False, "head/bias": True, "head/kernel": True}
    flags = flat_paths(get_method("eu_k", num_blocks=1).touches(model, params))
    assert [k for k, f in flags.items() if f] == ["dense1/bias", "dense1/kernel", "head/bias",
                                                  "head/kernel"]
    flags = flat_paths(get_method("original").touches(model, params, allow_empty=True))
    assert not any(flags.values())
    assert all(flat_paths(get_method("ft").touches(model, params)).values())


def _outside_touches(sel, model, p_in, p_out) -> tuple[list[str], list[str]]:
    """The parameters outside ``sel``, and those of them that changed (value or dtype)."""
    flags = flat_paths(sel(model, p_in, allow_empty=True))
    new, old = flat_paths(p_out), flat_paths(p_in)
    assert set(flags) == set(new) == set(old)
    frozen = [k for k, f in flags.items() if not f]
    changed = [k for k in frozen
               if not (new[k].dtype == old[k].dtype and np.array_equal(new[k], old[k]))]
    return frozen, changed


def test_touches_check_catches_a_wrong_declaration(splits):
    """A method that declares it touches only the classifier but trains everything (FT
    with a narrower ``touches``) is caught by the check above."""
    import dataclasses

    from jaxmu.methods import FtConfig, Method, MethodDef
    from jaxmu.models import classifier

    @dataclasses.dataclass(frozen=True, kw_only=True)
    class HeadOnlyFt(FtConfig):
        touches = classifier

    ft = get_method("ft").definition
    wrong = MethodDef("head_only_ft", ft.build, HeadOnlyFt, "", "", "")  # not registered
    model = MODELS["mlp"]
    method = Method(wrong, HeadOnlyFt(epochs=1, batch_size=16), model)
    params, state = model.init(jax.random.key(0))
    p_out, _ = method(params, state, splits, jax.random.key(0))
    frozen, changed = _outside_touches(method.touches, model, params, p_out)
    assert frozen and set(changed) == set(frozen)


def test_untouched_params_bit_identical(run, request):
    """Every parameter outside the method's declared ``touches`` comes back bit-identical
    (vacuous for methods that declare "all", which every registered method is checked for)."""
    _xfail(request, run["name"], "touches")
    sel = run["method"].touches
    (p_in, s_in), (p_out, s_out) = run["inp"], run["out0"]
    frozen, changed = _outside_touches(sel, run["model"], p_in, p_out)
    if sel != ALL:
        assert frozen, f"{run['name']}: touches={sel.describe()} selects every parameter"
    assert not changed, f"{run['name']}: changed outside touches={sel.describe()}: {changed}"
    if run["name"] == "original":
        assert tree_bitwise_equal(p_out, p_in) and tree_bitwise_equal(s_out, s_in)
    if run["name"] == "cf_k" and run["method"].hp.get("bn") == "eval":
        assert tree_bitwise_equal(s_out, s_in)  # eval-mode BN: running stats frozen
    if run["name"] == "eu_k" and "batch_stats" in s_in:  # frozen blocks' stats restored
        touched = set(flat_paths(p_in)) - set(frozen)
        modules = {k.rsplit("/", 1)[0] for k in touched}
        new_bs = flat_paths(s_out["batch_stats"])
        for k, v in flat_paths(s_in["batch_stats"]).items():
            if k.rsplit("/", 1)[0] not in modules:
                assert np.array_equal(new_bs[k], v), k


# ----------------------------------------------------------------------------- (g) errors


def test_unknown_method_lists_valid_names():
    with pytest.raises(ValueError, match="unknown method 'no_such_method'; valid: ") as e:
        get_method("no_such_method")
    for name in METHODS:
        assert name in str(e.value)


@pytest.mark.parametrize("name", METHODS)
def test_unknown_hparam_lists_valid_names(name):
    with pytest.raises(ValueError, match=r"unknown hyperparameter\(s\) \['bogus_hp'\]") as e:
        get_method(name, bogus_hp=1)
    defaults = get_method(name).defaults
    assert all(k in str(e.value) for k in defaults)
    m = get_method(name)
    with pytest.raises(ValueError, match="unknown hyperparameter"):
        m.with_hparams(bogus_hp=1)


def test_bad_arguments(splits):
    model = MODELS["mlp"]
    method = get_method("original")
    params, state = jax.eval_shape(model.init, jax.random.key(0))
    with pytest.raises(ValueError, match="not bound to a model: use method.bind"):
        method(params, state, splits, 0)
    bound = method.bind(model)
    for bad in ({"forget": splits.forget}, (splits.forget, splits.retain), None):
        with pytest.raises(ValueError, match="splits must be a jaxmu.Splits, got"):
            bound(params, state, bad, 0)


def test_hparam_type_checks():
    with pytest.raises(ValueError, match="ft.lr must be a finite number"):
        get_method("ft", lr=float("nan"))
    with pytest.raises(ValueError, match="ft.epochs must be a finite number"):
        get_method("ft", epochs="3")
    m = get_method("ft", epochs=2.0)
    assert m.hp["epochs"] == 2 and isinstance(m.hp["epochs"], int)


def test_registry_is_consistent():
    assert METHODS == sorted(METHODS) and len(set(METHODS)) == len(METHODS)
    for name in METHODS:
        m = get_method(name)
        assert m.name == name
        assert set(m.search_space) <= set(m.defaults)
        assert m.definition.summary and m.definition.section
