"""Stage 3 of the workbook: finding architectures.

Data (`data`), the proxy task (`proxy`), stand-alone training (`train`) and its cache
(`trainings`), the weight-sharing supernet (`supernet`), screening before any training
(`screen`), the controllers (`oracles`), the reward (`reward`), the keras-tuner search (`tuner`)
and the trials read back from disk (`trials`). Imports from `space` and `latency` only.
"""
