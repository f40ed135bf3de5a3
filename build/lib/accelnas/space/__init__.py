"""Stage 1 of the workbook: what a network is.

Architectures as data (`arch`), the block-type registry (`blocks`), the reference models (`zoo`),
the op graph (`graph`, `graph_keras`), the Keras builder (`builder`), the search space
(`search_space`) and tables over architectures (`tables`). Imports nothing from the later stages.
"""
