"""jaxmu's ResNet18 (ImageNet stem) against torchvision's ``resnet18`` on the same weights:
logits in train and eval mode, loss, gradients, BatchNorm running statistics and one SGD
step (lr 0.1, momentum 0.9, weight decay 5e-4). Needs PyTorch and torchvision (the
``bench`` extra); skips cleanly without them."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

torch = pytest.importorskip("torch")
torchvision = pytest.importorskip("torchvision")

from jaxmu.losses import cross_entropy  # noqa: E402
from jaxmu.models import get_model  # noqa: E402


def _jax_name(torch_name: str) -> tuple[str, ...]:
    """torchvision state-dict key -> jaxmu variable path (collection first)."""
    parts = torch_name.split(".")
    leaf = parts[-1]
    mods = parts[:-1]
    if mods[0].startswith("layer"):
        mods = [f"{mods[0]}_{mods[1]}", *mods[2:]]
        if mods[1:2] == ["downsample"]:
            mods = [mods[0], "downsample_conv" if mods[2] == "0" else "downsample_bn"]
    is_conv = mods[-1].startswith("conv") or mods[-1] == "downsample_conv"
    if mods[-1] == "fc":
        return ("params", *mods, "kernel" if leaf == "weight" else "bias")
    if is_conv:
        return ("params", *mods, "kernel")
    name = {"weight": ("params", "scale"), "bias": ("params", "bias"),
            "running_mean": ("batch_stats", "mean"), "running_var": ("batch_stats", "var")}[leaf]
    return (name[0], *mods, name[1])


def _to_jax(t: torch.Tensor, path: tuple[str, ...]) -> np.ndarray:
    a = t.detach().numpy()
    if a.ndim == 4:
        return a.transpose(2, 3, 1, 0)  # OIHW -> HWIO
    if path[-2:] == ("fc", "kernel"):
        return a.T
    return a


def _set(tree: dict, path: tuple[str, ...], value) -> None:
    for k in path[:-1]:
        tree = tree.setdefault(k, {})
    tree[path[-1]] = jnp.asarray(value)


def _get(tree: dict, path: tuple[str, ...]):
    for k in path:
        tree = tree[k]
    return np.asarray(tree)


@pytest.fixture(scope="module")
def pair():
    torch.manual_seed(0)
    net = torchvision.models.resnet18(num_classes=10)
    with torch.no_grad():  # non-trivial BN parameters and running statistics
        for m in net.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.2, 0.2)
                m.running_mean.uniform_(-0.1, 0.1)
                m.running_var.uniform_(0.5, 2.0)
    model = get_model("resnet18", 10, (32, 32, 3))
    variables: dict = {}
    for k, v in net.state_dict().items():
        if k.endswith("num_batches_tracked"):
            continue
        path = _jax_name(k)
        _set(variables, path, _to_jax(v, path))
    params = variables["params"]
    state = {"batch_stats": variables["batch_stats"]}
    ref_shapes = jax.eval_shape(model.init, jax.random.key(0))
    assert jax.tree.structure(ref_shapes) == jax.tree.structure((params, state))
    rng = np.random.default_rng(0)
    x = rng.normal(size=(8, 32, 32, 3)).astype(np.float32)
    y = rng.integers(0, 10, size=8)
    return net, model, params, state, x, y


def _torch_inputs(x, y):
    return torch.from_numpy(x.transpose(0, 3, 1, 2).copy()), torch.from_numpy(y).long()


def test_eval_logits_match(pair):
    net, model, params, state, x, y = pair
    net.eval()
    with torch.no_grad():
        ref = net(_torch_inputs(x, y)[0]).numpy()
    out, _ = model.apply(params, state, jnp.asarray(x), train=False)
    np.testing.assert_allclose(out, ref, rtol=1e-4, atol=1e-4)


def test_train_logits_loss_grads_running_stats_and_sgd_step(pair):
    net, model, params, state, x, y = pair
    net.train()
    xt, yt = _torch_inputs(x, y)
    opt = torch.optim.SGD(net.parameters(), lr=0.1, momentum=0.9, weight_decay=5e-4)
    before = {k: v.clone() for k, v in net.state_dict().items()}
    opt.zero_grad()
    logits_t = net(xt)
    loss_t = torch.nn.functional.cross_entropy(logits_t, yt)
    loss_t.backward()
    grads_t = {k: p.grad.clone() for k, p in net.named_parameters()}
    opt.step()
    after = {k: v.clone() for k, v in net.state_dict().items()}
    net.load_state_dict(before)

    def loss_fn(p):
        logits, new_state = model.apply(p, state, jnp.asarray(x), train=True)
        return cross_entropy(logits, jnp.asarray(y)), (logits, new_state)

    (loss, (logits, new_state)), grads = jax.jit(jax.value_and_grad(loss_fn, has_aux=True))(
        params)
    np.testing.assert_allclose(logits, logits_t.detach().numpy(), rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(loss, loss_t.item(), rtol=1e-5)
    for k, g in grads_t.items():
        path = _jax_name(k)[1:]
        ours = _get(grads, path)
        ref = _to_jax(g, ("params", *path))
        scale = np.max(np.abs(ref))
        assert np.max(np.abs(ours - ref)) <= 1e-4 * scale + 1e-7, k
    # running statistics: mean and the unbiased variance, momentum 0.1
    for k, v in after.items():
        if k.endswith(("running_mean", "running_var")):
            ours = _get(new_state, _jax_name(k))
            np.testing.assert_allclose(ours, v.numpy(), rtol=1e-4, atol=1e-6, err_msg=k)
    # one SGD step: PyTorch SGD == coupled weight decay, then heavy-ball momentum, then -lr
    tx = optax.chain(optax.add_decayed_weights(5e-4), optax.trace(0.9), optax.scale(-0.1))
    updates, _ = tx.update(grads, tx.init(params), params)
    stepped = optax.apply_updates(params, updates)
    for k, v in after.items():
        if k.endswith("num_batches_tracked"):
            continue
        path = _jax_name(k)
        if path[0] != "params":
            continue
        ours = _get(stepped, path[1:]) - _get(params, path[1:])
        ref = _to_jax(v, path) - _to_jax(before[k], path)  # the update of this step
        assert np.max(np.abs(ours - ref)) <= 1e-4 * np.max(np.abs(ref)) + 1e-8, k
