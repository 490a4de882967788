"""What a module's ``forward`` computes, found by tracing it (``torch.fx``).

Two routes run a network faster than calling it when its forward is made of known
pieces: the training field calls a chain's steps one after another, skipping
``nn.Module.__call__``'s search for hooks, and the landscape evaluates a whole chunk of
parameter vectors at once. Both take the forward as it was traced: a module attribute
it reads as a constant (softplus's ``beta``, the training flag) counts as fixed then.
"""

from __future__ import annotations

import functools
import operator

import torch

# Modules that act on each number alone and hold no parameters: a chunk of θ passes
# through them as one (rows, points, features) tensor.
ELEMENTWISE = frozenset(
    {
        torch.nn.CELU,
        torch.nn.ELU,
        torch.nn.GELU,
        torch.nn.Hardsigmoid,
        torch.nn.Hardswish,
        torch.nn.Hardtanh,
        torch.nn.Identity,
        torch.nn.LeakyReLU,
        torch.nn.LogSigmoid,
        torch.nn.Mish,
        torch.nn.ReLU,
        torch.nn.ReLU6,
        torch.nn.SELU,
        torch.nn.SiLU,
        torch.nn.Sigmoid,
        torch.nn.Softplus,
        torch.nn.Softsign,
        torch.nn.Tanh,
        torch.nn.Tanhshrink,
    }
)


# Functions and tensor methods that act on each number alone: a forward may call them
# on a result (with constant further arguments, if any) between its Linear layers.
ELEMENTWISE_FUNCTIONS = frozenset(
    {
        torch.tanh,
        torch.relu,
        torch.sigmoid,
        torch.nn.functional.celu,
        torch.nn.functional.elu,
        torch.nn.functional.gelu,
        torch.nn.functional.hardsigmoid,
        torch.nn.functional.hardswish,
        torch.nn.functional.hardtanh,
        torch.nn.functional.leaky_relu,
        torch.nn.functional.logsigmoid,
        torch.nn.functional.mish,
        torch.nn.functional.relu,
        torch.nn.functional.relu6,
        torch.nn.functional.selu,
        torch.nn.functional.sigmoid,
        torch.nn.functional.silu,
        torch.nn.functional.softplus,
        torch.nn.functional.softsign,
        torch.nn.functional.tanh,
        torch.nn.functional.tanhshrink,
    }
)
ELEMENTWISE_METHODS = frozenset({"relu", "sigmoid", "tanh"})


# Modules with parameters that a chunk of θ can run through at once: a Linear layer
# as a batched matrix product, a LayerNorm over the last axis scaled row by row.
LAYERS = frozenset({torch.nn.Linear, torch.nn.LayerNorm})


# Sums, differences and products of two values (or of a value and a number): a skip
# connection (``self.out(h) + h``) is one.
BINARY_FUNCTIONS = frozenset(
    {operator.add, operator.sub, operator.mul, torch.add, torch.sub, torch.mul}
)
BINARY_METHODS = frozenset({"add", "sub", "mul"})


class Ref(int):
    """Among a step's arguments: the result of an earlier step (the data: -1)."""


def traced_graph(model: torch.nn.Module) -> tuple[list, list] | None:
    """What a module's own ``forward`` computes, found by tracing it (``torch.fx``),
    as steps ``(operation, args, kwargs)`` in the order they run, and every module
    involved. None unless each step is a layer (``LAYERS``), an elementwise module,
    function or method
    called on one earlier result (further arguments constant: ``F.softplus(h,
    beta=10.0)``), or the sum, difference or product of earlier results and numbers,
    from one input to one output. Arguments that are earlier results are ``Ref``
    indices (the input: -1). Every module in the model counts as involved: a hook on
    any of them, even one that the trace went through, makes the faster routes stand
    aside."""
    modules = list(model.modules())
    if any(type(m).__call__ is not torch.nn.Module.__call__ for m in modules):
        return None  # a module that does more than its forward when called
    try:
        graph = torch.fx.Tracer().trace(model)
    except Exception:  # control flow on values, or anything else fx cannot follow
        return None
    nodes = list(graph.nodes)
    if len(nodes) < 3 or [n.op for n in nodes].count("placeholder") != 1:
        return None
    if nodes[0].op != "placeholder" or nodes[-1].op != "output":
        return None
    refs = {nodes[0]: Ref(-1)}
    steps = []
    for node in nodes[1:-1]:
        step = _traced_step(model, node, refs)
        if step is None:
            return None
        refs[node] = Ref(len(steps))
        steps.append(step)
    result = nodes[-1].args
    if len(result) != 1 or result[0] is not nodes[-2]:
        return None  # the forward returns its last step's result, alone
    return steps, modules


def _traced_step(model, node, refs) -> tuple | None:
    """One traced call as ``(operation, args, kwargs)``, or None where it is none of
    those ``traced_graph`` takes."""
    values = [*node.args, *node.kwargs.values()]
    if any(isinstance(v, torch.fx.Node) and v not in refs for v in values):
        return None
    if any(_has_node(v) and not isinstance(v, torch.fx.Node) for v in values):
        return None  # results inside a list or tuple
    args = tuple(refs.get(a, a) if isinstance(a, torch.fx.Node) else a for a in node.args)
    kwargs = dict(node.kwargs)
    first = args[0] if args else None
    unary = type(first) is Ref and not _has_node((node.args[1:], node.kwargs))
    # an elementwise step on the data itself would act on it (in place, even)
    on_result = unary and first >= 0
    if node.op == "call_module":
        module = model.get_submodule(node.target)
        if not (unary and len(args) == 1 and not kwargs):
            return None
        if type(module) in LAYERS:
            return module, args, kwargs
        return (module, args, kwargs) if on_result and type(module) in ELEMENTWISE else None
    if node.op == "call_function" and node.target in ELEMENTWISE_FUNCTIONS:
        return (node.target, args, kwargs) if on_result else None
    if node.op == "call_method" and node.target in ELEMENTWISE_METHODS:
        return (getattr(torch, node.target), args, kwargs) if on_result else None
    binary = node.op == "call_function" and node.target in BINARY_FUNCTIONS
    binary = binary or (node.op == "call_method" and node.target in BINARY_METHODS)
    if binary and len(args) == 2 and not kwargs and all(_operand(a) for a in args):
        target = getattr(torch, node.target) if node.op == "call_method" else node.target
        return target, args, kwargs
    return None


def _operand(value) -> bool:
    return type(value) is Ref or (isinstance(value, (int, float)) and not isinstance(value, bool))


def _has_node(value) -> bool:
    """Whether a traced call's argument depends on the input (holds a ``torch.fx.Node``)."""
    found = []
    torch.fx.node.map_arg(value, found.append)
    return bool(found)


def chain_steps(found: list) -> list | None:
    """``traced_graph``'s steps as callables each taking the previous one's result, or
    None unless the forward is such a chain."""
    steps = []
    for i, (op, args, kwargs) in enumerate(found):
        first, rest = args[0], (*args[1:], *kwargs.values())
        if type(first) is not Ref or first != i - 1 or any(type(a) is Ref for a in rest):
            return None
        if isinstance(op, torch.nn.Module):
            steps.append(op)
        else:
            steps.append(functools.partial(_call_first, op, args[1:], kwargs))
    return steps


def _call_first(op, rest, kwargs, x):
    return op(x, *rest, **kwargs)


# Hooks registered for every module (``torch.nn.modules.module.register_module_*``);
# None where a torch version names them otherwise, which turns ``DirectForward`` off.
_GLOBAL_HOOKS = tuple(
    getattr(torch.nn.modules.module, name, None)
    for name in (
        "_global_forward_pre_hooks",
        "_global_forward_hooks",
        "_global_backward_pre_hooks",
        "_global_backward_hooks",
    )
)


def _plain_sequential(module: torch.nn.Module) -> bool:
    """An ``nn.Sequential`` (or a subclass) that runs as one: its own forward and call."""
    kind = type(module)
    return (
        isinstance(module, torch.nn.Sequential)
        and kind.forward is torch.nn.Sequential.forward
        and kind.__call__ is torch.nn.Module.__call__
    )


def _sequential_steps(model: torch.nn.Module) -> tuple[list, list] | None:
    """An ``nn.Sequential``'s modules in the order they run (nested ones flattened) and
    every module involved, containers too; None unless all are called plainly."""
    if not _plain_sequential(model):
        return None
    steps, involved = [], [model]
    for child in model:
        if type(child).__call__ is not torch.nn.Module.__call__:
            return None
        nested = _sequential_steps(child) if _plain_sequential(child) else None
        if nested is None:
            steps.append(child)
            involved.append(child)
        else:
            steps += nested[0]
            involved += nested[1]
    return steps, involved


class DirectForward:
    """``model(x)`` for a chain of modules, each one's ``forward`` called in turn.

    ``nn.Module.__call__`` costs about a microsecond a module to find that no hook is
    registered; for a small network that is a few per cent of a training step. This
    skips it when that changes nothing: no module involved has hooks, none is compiled
    in place, no hook is registered globally and nothing is being traced. All of that
    is checked on every call, so a hook registered later runs as it should. A chain is
    an ``nn.Sequential``, or a module whose ``forward`` traces to one step after
    another (``phviz.tracing``: its layers, elementwise functions and methods), taken as
    it was traced, in the training mode it had then. Any other model is simply called.
    """

    def __init__(self, model: torch.nn.Module, found: tuple[list, list] | None = None):
        """``found``: the steps and the modules involved, where the caller found them;
        by default those of a plain ``nn.Sequential`` or of a traced chain."""
        self.model = model
        self.traced = None  # the traced forward (``traced_graph``) of any other module
        self._traced_mode = None  # the training mode it was traced in
        if None in _GLOBAL_HOOKS:  # a torch whose global hooks cannot be checked
            found = None
        elif found is None:
            found = _sequential_steps(model)
            if found is None and not isinstance(model, torch.nn.Sequential):
                self.traced = traced_graph(model)
                steps = None if self.traced is None else chain_steps(self.traced[0])
                if steps is not None:
                    found, self._traced_mode = (steps, self.traced[1]), model.training
        self.steps, involved = found if found is not None else (None, [])
        self.modules = involved
        self.hooks = (
            tuple(
                hooks
                for module in involved
                for hooks in (
                    module._forward_pre_hooks,
                    module._forward_hooks,
                    module._backward_pre_hooks,
                    module._backward_hooks,
                )
            )
            + _GLOBAL_HOOKS
        )

    @property
    def plain(self) -> bool:
        """Whether running ``steps`` one by one is, right now, the same as calling the model."""
        return not (
            self.steps is None
            or any(self.hooks)
            or (self._traced_mode is not None and self.model.training != self._traced_mode)
            or torch._C._get_tracing_state()
            or any([m._compiled_call_impl is not None for m in self.modules])
        )

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        if not self.plain:
            return self.model(x)
        for step in self.steps:
            x = step.forward(x) if isinstance(step, torch.nn.Module) else step(x)
        return x
