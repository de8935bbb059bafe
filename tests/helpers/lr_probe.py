"""A dist_sync worker that measures the learning rate each update really applied.

Run under scripts/launch.py by tests/test_distributed.py. The network is one bias-free linear
unit whose loss is the sum of its weights, so every gradient element is exactly 1 on every worker;
plain SGD then moves each weight by exactly the learning rate in force. Prints one JSON line.
"""
import json
import os
import sys

import mxnet as mx
from mxnet import autograd, gluon, nd

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))

from gluon_cifar.config import Config  # noqa: E402
from gluon_cifar.distributed.cluster import connect, initialize_kvstore  # noqa: E402
from gluon_cifar.training.optim import make_trainer  # noqa: E402
from gluon_cifar.training.schedules import learning_rate  # noqa: E402

cluster = connect("dist_sync", [mx.cpu()])
net = gluon.nn.Dense(1, in_units=4, use_bias=False)
net.initialize(mx.init.Zero())
cfg = Config(lr=1.0, momentum=0.0, wd=0.0, lr_period=1, lr_decay=0.5, epochs=3)
trainer = make_trainer(net, cfg, kvstore=cluster.kvstore,
                       update_on_kvstore=cluster.update_on_kvstore)
initialize_kvstore(trainer)
applied = []
for step in range(1, 7):  # 3 epochs of 2 batches
    before = net.weight.data().asnumpy()
    with autograd.record():
        loss = net(nd.ones((1, 4))).sum()
    loss.backward()
    trainer.set_learning_rate(learning_rate(cfg, step, batches_per_epoch=2))  # as the training loop does
    trainer.step(cluster.num_workers)  # one sample per worker; the summed gradient is divided by all
    applied.append(float((before - net.weight.data().asnumpy()).mean()))
print(json.dumps({"rank": cluster.rank, "workers": cluster.num_workers, "applied_lr": applied,
                  "weights": net.weight.data().asnumpy().ravel().tolist()}), flush=True)
