"""NAS-Bench-201 networks as op graphs: the model family of the LatBench Edge TPU measurements.

Pure module (no TensorFlow). A NAS-Bench-201 architecture is a cell string of three nodes,
``|op~0|+|op~0|op~1|+|op~0|op~1|op~2|``: node j sums ``op(node i)`` over its edges i -> j, with ops
``none``, ``skip_connect``, ``nor_conv_1x1``, ``nor_conv_3x3``, ``avg_pool_3x3`` (Dong & Yang,
"NAS-Bench-201", ICLR 2020). `nb201_graph` builds the network LatBench measured on an Edge TPU
(Dudziak et al., "BRP-NAS", NeurIPS 2020; the description follows the release's model code):

* a 3x3 stem conv to 16 channels with a fused ReLU;
* three stages of ``cells`` cells at 16 / 32 / 64 channels; between stages a reduction block: a main
  branch 3x3 conv stride 2 then 3x3 conv, a residual branch 2x2 average pool stride 2 then 1x1
  conv, summed (no BatchNorm, no activation);
* in a cell, convolutions have no bias and a fused ReLU, ``skip_connect`` is the identity (no op),
  ``avg_pool_3x3`` is stride 1 with same padding, a node of several inputs is a chain of binary
  ADDs; ``none`` edges are dropped, and so is every edge that cannot reach the cell output or comes
  from a node no input reaches;
* global average pool and a dense classifier.

There is no BatchNorm anywhere, so nothing is folded: a conv's weight bytes are its int8 weights.
"""
from __future__ import annotations

from accelnas.space.ops import Net, Op, OpGraph, conv_op, elementwise_op, fc_op

OPS = ("none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3")
PREFIX = "nb201:"
NODES = 4


def parse(arch: str) -> list[list[tuple[str, int]]]:
    """The edges of a cell string: for node 1, 2, 3 the list of (op, input node).

    Raises:
        ValueError: not a NAS-Bench-201 cell string (says what is wrong and shows the form).
    """
    text = arch[len(PREFIX):] if arch.startswith(PREFIX) else arch
    form = "|op~0|+|op~0|op~1|+|op~0|op~1|op~2| with ops " + ", ".join(OPS)
    nodes = text.split("+")
    if len(nodes) != NODES - 1:
        raise ValueError(f"{arch!r}: a NAS-Bench-201 cell has {NODES - 1} nodes separated by '+': {form}")
    out = []
    for j, node in enumerate(nodes, start=1):
        if not (node.startswith("|") and node.endswith("|")):
            raise ValueError(f"{arch!r}: node {j} {node!r} is not enclosed in '|': {form}")
        edges = []
        for item in node[1:-1].split("|"):
            op, sep, src = item.partition("~")
            if not sep or op not in OPS or not src.isdigit():
                raise ValueError(f"{arch!r}: edge {item!r} of node {j} is not op~input: {form}")
            edges.append((op, int(src)))
        if sorted(s for _, s in edges) != list(range(j)):
            raise ValueError(f"{arch!r}: node {j} must have one edge from each of nodes 0..{j - 1}: {form}")
        out.append(sorted(edges, key=lambda e: e[1]))
    return out


def live_edges(arch: str) -> list[tuple[int, int, str]]:
    """(input node, output node, op) of the edges that compute: not ``none``, from a node the cell
    input reaches, to a node that reaches the cell output (node 3)."""
    edges = [(i, j, op) for j, node in enumerate(parse(arch), start=1) for op, i in node if op != "none"]
    reached = {0}
    for i, j, _ in edges:  # edges are in node order: one pass suffices
        if i in reached:
            reached.add(j)
    useful = {NODES - 1}
    for i, j, _ in reversed(edges):
        if j in useful:
            useful.add(i)
    return [(i, j, op) for i, j, op in edges if i in reached and j in useful]


def is_valid(arch: str) -> bool:
    """Whether the cell passes its input to its output at all (a cell of only dead edges does not)."""
    return any(j == NODES - 1 for _, j, _ in live_edges(arch))


def _cell(net: Net, arch_edges, name: str, x: Op) -> Op:
    """Append one cell on input ``x``; returns its output op (``x`` itself for an identity cell)."""
    h, w, c = x.out_shape
    node: dict[int, Op] = {0: x}
    for j in range(1, NODES):
        terms = []
        for i, jj, op in arch_edges:
            if jj != j:
                continue
            src = node[i]
            if op == "skip_connect":
                terms.append(src)
            elif op == "avg_pool_3x3":
                terms.append(net.add(Op(f"{name}_e{i}{j}_pool", "avgpool", (src.name,), src.out_shape,
                                        src.out_shape, kernel=3, stride=1)))
            else:
                k = 1 if op == "nor_conv_1x1" else 3
                terms.append(net.add(conv_op(f"{name}_e{i}{j}_conv{k}", (src.name,), src.out_shape, c, k,
                                             bn=False, bias=False, activation="relu")))
        if not terms:
            continue
        acc = terms[0]
        for n, t in enumerate(terms[1:], start=1):
            acc = net.add(elementwise_op(f"{name}_n{j}_add{n}", "add", (acc.name, t.name), (h, w, c)))
        node[j] = acc
    return node[NODES - 1]


def _reduction(net: Net, name: str, x: Op, cout: int) -> Op:
    h, w, cin = x.out_shape
    a = net.add(conv_op(f"{name}_conv_a", (x.name,), x.out_shape, cout, 3, 2, bn=False))
    b = net.add(conv_op(f"{name}_conv_b", (a.name,), a.out_shape, cout, 3, 1, bn=False))
    ho, wo = a.out_shape[:2]
    p = net.add(Op(f"{name}_pool", "avgpool", (x.name,), x.out_shape, (ho, wo, cin), kernel=2, stride=2))
    r = net.add(conv_op(f"{name}_shortcut", (p.name,), p.out_shape, cout, 1, bn=False))
    return net.add(elementwise_op(f"{name}_add", "add", (b.name, r.name), b.out_shape))


def nb201_graph(arch: str, *, resolution: int = 32, num_classes: int = 100, channels: int = 16,
                cells: int = 5) -> OpGraph:
    """The op graph of the NAS-Bench-201 network ``arch`` (see the module docstring).

    Raises:
        ValueError: ``arch`` is not a cell string, or its cell does not connect input and output.
    """
    edges = live_edges(arch)
    if not is_valid(arch):
        raise ValueError(f"{arch!r}: no path from the cell input to its output (every path has a "
                         "'none' edge); NAS-Bench-201 networks of such cells output a constant")
    text = arch[len(PREFIX):] if arch.startswith(PREFIX) else arch
    net = Net()
    x = net.add(Op("input", "input", (), (resolution, resolution, 3), (resolution, resolution, 3)))
    x = net.add(conv_op("stem_conv", (x.name,), x.out_shape, channels, 3, bn=False, activation="relu"))
    for s in range(3):
        if s:
            x = _reduction(net, f"reduce{s}", x, channels * 2 ** s)
        for c in range(cells):
            x = _cell(net, edges, f"stage{s + 1}_cell{c + 1}", x)
    c = x.out_shape[2]
    x = net.add(Op("pool", "gap", (x.name,), x.out_shape, (1, 1, c)))
    net.add(fc_op("logits", (x.name,), c, num_classes))
    return OpGraph(name=PREFIX + text, ops=tuple(net.ops))
