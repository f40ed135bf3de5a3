"""Training, the room every stage that trains a network uses (search, scaling, report, `accelnas train`).

Data (`data`: in-memory CIFAR-10 and synthetic images; `stream`: tfds, folder and TFRecord
datasets decoded inside tf.data), the proxy task's stride rule (`proxy`), the devices, the
`tf.distribute` strategy and the precision (`strategy`), stand-alone training (`proxy_train`),
its cache of finished trainings (`cache`) and long trainings with checkpoints (`fit`).
Imports from `space` and `latency` only.
"""
