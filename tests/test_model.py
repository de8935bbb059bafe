import json

import mxnet as mx
import numpy as np
import pytest

from gluon_cifar.models import Residual, build_model, resnet18


def book_parameter_count(num_classes=10):
    """Trainable parameters of the book's network, counted from its definition."""
    conv = lambda cin, cout, k: cin * cout * k * k + cout  # noqa: E731  (weights + bias)
    bn = lambda c: 2 * c  # noqa: E731  (gamma, beta)
    total = conv(3, 64, 3) + bn(64)
    cin = 64
    for stage, c in enumerate((64, 128, 256, 512)):
        for i in range(2):
            first = i == 0
            total += conv(cin if first else c, c, 3) + bn(c) + conv(c, c, 3) + bn(c)
            if first and stage > 0:
                total += conv(cin, c, 1)
        cin = c
    return total + 512 * num_classes + num_classes


@pytest.fixture(scope="module")
def net():
    return build_model("resnet18", 10, [mx.cpu()], seed=0)


def test_output_shape_and_finite(net):
    out = net(mx.nd.random.normal(shape=(3, 3, 32, 32)))
    assert out.shape == (3, 10)
    assert np.isfinite(out.asnumpy()).all()


def test_parameter_count_matches_the_book(net):
    trainable = sum(p.data().size for p in net.collect_params().values() if p.grad_req != "null")
    assert trainable == book_parameter_count() == 11_176_970


def test_hybridized_equals_imperative():
    net = build_model("resnet18", 10, [mx.cpu()], seed=1)
    x = mx.nd.random.uniform(shape=(4, 3, 32, 32))
    imperative = net(x).asnumpy()
    net.hybridize(static_alloc=True)
    hybrid = net(x).asnumpy()
    np.testing.assert_allclose(hybrid, imperative, rtol=1e-4, atol=1e-5)


def test_graph_has_no_numpy_extension_operators(tmp_path):
    """`_npx_*` operators break ONNX export and AMP; the legacy F API records none."""
    net = build_model("resnet18", 10, [mx.cpu()], seed=0)
    net.hybridize()
    net(mx.nd.zeros((1, 3, 32, 32)))
    net.export(str(tmp_path / "net"))
    ops = {node["op"] for node in json.loads((tmp_path / "net-symbol.json").read_text())["nodes"]}
    assert "Convolution" in ops and not any(op.startswith("_np") for op in ops)


def test_residual_projects_only_when_shape_changes():
    same, down = Residual(64, 64), Residual(128, 64, strides=2)
    assert same.project is None and down.project is not None
    down.initialize()
    assert down(mx.nd.zeros((2, 64, 32, 32))).shape == (2, 128, 16, 16)


def test_gluoncv_model_by_name_and_unknown_name():
    from gluon_cifar.errors import ConfigError
    net = build_model("cifar_resnet20_v1", 10, [mx.cpu()], seed=0)
    assert net(mx.nd.zeros((2, 3, 32, 32))).shape == (2, 10)
    with pytest.raises(ConfigError, match="cifar_resnet56_v1"):
        build_model("resnet1000", 10, [mx.cpu()])


def test_readme_usage_of_resnet18():
    net = resnet18(num_classes=10)
    net.initialize(mx.init.Xavier())
    net.hybridize()
    assert net(mx.nd.zeros((1, 3, 32, 32))).shape == (1, 10)


def test_the_books_import_path_still_works():
    from gluon_cifar.model import build_model as legacy_build_model
    from gluon_cifar.model import resnet18 as legacy_resnet18
    assert legacy_resnet18 is resnet18 and legacy_build_model is build_model
