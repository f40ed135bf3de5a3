"""Stage 3 of the workbook: finding architectures.

Data (`data`), the proxy task (`proxy`), stand-alone training (`train`) and its cache
(`trainings`), the controllers (`oracles`), the reward (`reward`), the keras-tuner search
(`tuner`) and the analysis of its trials (`trials`). Imports from `space` and `latency` only.
"""
