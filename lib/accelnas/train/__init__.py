"""Training, the room every stage that trains a network uses (search, scaling, report, `accelnas train`).

Data (`data`: in-memory CIFAR-10, synthetic and tfds images, the pipeline; `stream`: folder
and TFRecord datasets decoded inside tf.data; `load`: the data a params file names), the proxy
task's stride rule (`proxy`), the devices, the `tf.distribute` strategy and the precision
(`strategy`), stand-alone training (`proxy_train`) with its checkpoints (`checkpoint`), its cache
of finished trainings (`cache`) and one network trained on its own (`fit`, ``accelnas train``).
Imports from `space` and `latency` only.
"""
