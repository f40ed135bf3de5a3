"""Stage 3 of the workbook: finding architectures.

The weight-sharing supernet (`supernet`), screening before any training (`screen`), the
controllers (`oracles`), the reward (`reward`), the keras-tuner search (`tuner`), the trials read
back from disk (`trials`) and how far the stage-1 ranking holds (`proxy_fidelity`). Data and
training come from `accelnas.train`. Imports from `space`, `latency` and `train` only.
"""
