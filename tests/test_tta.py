"""Test-time augmentation: flip and the six shifted and mirrored views."""

import mxnet as mx
import numpy as np
from mxnet import nd

from gluon_cifar.inference.tta import predict_classes
from gluon_cifar.models import build_model


def test_flip_tta_averages_each_image_with_its_mirror():
    net = build_model("cifar_resnet20_v1", 10, [mx.cpu(0), mx.cpu(1)], seed=3)
    x = nd.random.uniform(-1, 1, shape=(7, 3, 32, 32))
    mirrored = x.flip(axis=3).as_in_context(mx.cpu(0))
    expected = (nd.softmax(net(x.as_in_context(mx.cpu(0)))) + nd.softmax(net(mirrored))).argmax(axis=1).asnumpy()
    got = np.concatenate([p.asnumpy() for p in predict_classes(net, x, [mx.cpu(0), mx.cpu(1)], "flip")])
    np.testing.assert_array_equal(got, expected)


def test_six_view_tta_weights_the_shifted_views_and_their_mirrors():
    net = build_model("fastnet_small", 10, [mx.cpu(0), mx.cpu(1)], seed=3)
    x = nd.random.uniform(-1, 1, shape=(7, 3, 32, 32))
    padded = np.pad(x.asnumpy(), ((0, 0), (0, 0), (1, 1), (1, 1)), mode="reflect")
    views = [x.asnumpy(), padded[:, :, :32, :32], padded[:, :, 2:, 2:]]  # as is, moved down-right, up-left

    def probabilities(view):
        return nd.softmax(net(nd.array(view))).asnumpy() + nd.softmax(net(nd.array(view[:, :, :, ::-1]))).asnumpy()

    expected = (2 * probabilities(views[0]) + probabilities(views[1]) + probabilities(views[2])).argmax(axis=1)
    got = np.concatenate([p.asnumpy() for p in predict_classes(net, x, [mx.cpu(0), mx.cpu(1)], "flip-shift")])
    np.testing.assert_array_equal(got, expected)
    assert not np.array_equal(padded[:, :, :32, :32], views[0])  # the shifted views do differ
